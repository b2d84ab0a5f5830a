"""How many customers a field-rule change would flip: a read-only re-decision over the source values.

A rule is applied to a customer whenever the customer's fields are decided
again (at its next event). This preview re-decides the field for every
customer holding a value from a source whose rank the change touches, with
the old and with the new rule, and counts those whose golden value differs.
Customers holding only values of untouched sources keep their decision, so
they are not read. Rows are streamed in chunks; the scan stops after
`max_customers` and says so.
"""

from dataclasses import dataclass, field
from itertools import groupby

from .models import FieldOverride, SourcePriorityRule, SourceValue
from .survivorship import STRATEGIES, Rule, decide

DEFAULT_MAX_CUSTOMERS = 50_000


@dataclass
class RulePreview:
    field: str
    affected_sources: list[str]
    customers_scanned: int = 0
    customers_flipped: int = 0
    values_newly_rejected: int = 0  # source values the new rule no longer lets set the field
    sample_customer_ids: list[int] = field(default_factory=list)
    truncated: bool = False


def _affected_sources(old: Rule, new: Rule, seen: set[str]) -> set[str]:
    names = seen | set(old.sources) | set(new.sources)
    if old.strategy != new.strategy:
        return names
    return {name for name in names if old.rank(name) != new.rank(name)}


def rule_change_preview(*, field: str, strategy: str, sources: list[str],
                        max_customers: int = DEFAULT_MAX_CUSTOMERS, sample: int = 20) -> RulePreview:
    """Compare the stored rule of `field` with (strategy, sources) over the customers' source values."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    stored = SourcePriorityRule.objects.filter(field=field).first()
    old = stored.as_rule() if stored else Rule()
    new = Rule(strategy=strategy, sources=tuple(sources))
    values = SourceValue.objects.filter(field=field)
    seen = set(values.values_list("source", flat=True).distinct())
    affected = _affected_sources(old, new, seen)
    preview = RulePreview(field=field, affected_sources=sorted(affected))
    if not affected:
        return preview

    customer_ids = (values.filter(source__in=affected).values_list("customer_id", flat=True)
                    .distinct().order_by("customer_id"))
    overrides = {o.customer_id: o.as_override() for o in FieldOverride.objects.filter(field=field)}
    rows = (values.filter(customer_id__in=customer_ids, customer__deleted_at__isnull=True,
                          customer__merged_into__isnull=True)
            .order_by("customer_id", "source")
            .only("customer_id", "source", "value", "occurred_at", "event_id"))
    for customer_id, group in groupby(rows.iterator(chunk_size=2000), key=lambda row: row.customer_id):
        if preview.customers_scanned >= max_customers:
            preview.truncated = True
            break
        preview.customers_scanned += 1
        candidates = [row.as_candidate() for row in group]
        override = overrides.get(customer_id)
        before, after = decide(old, candidates, override), decide(new, candidates, override)
        preview.values_newly_rejected += sum(
            1 for c in candidates if old.allows(c.source) and not new.allows(c.source)
        )
        if before.value != after.value:
            preview.customers_flipped += 1
            if len(preview.sample_customer_ids) < sample:
                preview.sample_customer_ids.append(customer_id)
    return preview
