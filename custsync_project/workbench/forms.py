"""Admin forms for data stewards: the field rule's ordered sources without typing JSON.

The sources of a rule are edited as rows: one per known source with a
position (1 = best; blank = may not set the field), plus empty rows to add a
name. Known sources are the configured webhook sources, the sources already
seen in the data and the ones the rule lists now; any other name is refused
with a message naming it.
"""

from django import forms

from canonical.models import SourcePriorityRule, SourceValue
from webhooks.models import Source

EXTRA_ROWS = 2


def known_sources() -> list[str]:
    """Configured webhook sources, sources seen in the data, and sources named by any rule."""
    names = set(SourceValue.objects.values_list("source", flat=True).distinct())
    for listed in SourcePriorityRule.objects.values_list("sources", flat=True):
        names.update(s for s in (listed or []) if isinstance(s, str))
    names.update(Source.objects.values_list("name", flat=True))
    return sorted(names)


class SourceOrderWidget(forms.Widget):
    """Rows of (source, position); renders known sources first in their current order."""

    template_name = "workbench/source_order.html"

    def __init__(self, attrs=None, known=()):
        super().__init__(attrs)
        self.known = list(known)

    def _rows(self, value) -> list[tuple[str, str, bool]]:
        """(name, position text, name is fixed) for rendering."""
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        pairs = []
        for index, item in enumerate(value or []):
            if isinstance(item, (list, tuple)):
                pairs.append((str(item[0]), str(item[1] or "")))
            else:
                pairs.append((str(item), str(index + 1)))
        listed = {name for name, _ in pairs}
        rows = [(name, position, True) for name, position in pairs if name]
        rows += [(name, "", True) for name in self.known if name not in listed]
        rows += [("", "", False)] * EXTRA_ROWS
        return rows

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["rows"] = [
            {"index": i, "name": n, "position": p, "fixed": fixed} for i, (n, p, fixed) in enumerate(self._rows(value))
        ]
        context["widget"]["total"] = len(context["widget"]["rows"])
        return context

    def value_from_datadict(self, data, files, name):
        if f"{name}-TOTAL" not in data:
            # A plain comma-separated list (scripts, older forms): "crm, shop".
            text = data.get(name, "")
            return [(s.strip(), str(i + 1)) for i, s in enumerate(text.split(",")) if s.strip()]
        try:
            total = min(int(data.get(f"{name}-TOTAL", 0)), 200)
        except ValueError:
            total = 0
        rows = []
        for index in range(total):
            source = (data.get(f"{name}-{index}-name") or "").strip()
            position = (data.get(f"{name}-{index}-position") or "").strip()
            if source or position:
                rows.append((source, position))
        return rows

    def value_omitted_from_data(self, data, files, name):
        return f"{name}-TOTAL" not in data and name not in data


class SourceOrderField(forms.Field):
    widget = SourceOrderWidget

    def __init__(self, *, known=(), **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.known = list(known)

    def prepare_value(self, value):
        return value

    def clean(self, value):
        rows = value or []
        errors, ordered, seen = [], [], {}
        for source, position in rows:
            if not source:
                errors.append(f"position {position} has no source name")
                continue
            if not position:
                continue  # listed without a position: may not set the field
            try:
                rank = int(position)
                if rank < 1:
                    raise ValueError
            except ValueError:
                errors.append(f"the position of {source} must be a whole number from 1")
                continue
            if source in seen:
                errors.append("a source may appear only once")
                continue
            seen[source] = rank
            ordered.append((rank, source))
        unknown = sorted(set(seen) - set(self.known))
        if unknown:
            errors.append(f"unknown source{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
                          f"(known: {', '.join(self.known) or 'none yet'})")
        ranks = sorted(rank for rank, _ in ordered)
        clashes = sorted({r for r in ranks if ranks.count(r) > 1})
        for rank in clashes:
            names = sorted(s for r, s in ordered if r == rank)
            errors.append(f"{' and '.join(names)} both have position {rank}; give each source its own position")
        if errors:
            raise forms.ValidationError(list(dict.fromkeys(errors)))
        return [source for _, source in sorted(ordered)]


class RuleForm(forms.ModelForm):
    sources = SourceOrderField(
        label="Sources (best first)",
        help_text="Give each source that may set this field a position: 1 is the best. Leave a position empty "
                  "and that source may not set the field. No position at all: every source may, with equal rank.",
    )

    class Meta:
        model = SourcePriorityRule
        fields = ("field", "strategy", "sources")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        known = known_sources()
        self.fields["sources"].known = known
        self.fields["sources"].widget.known = known
        self.preview = None
