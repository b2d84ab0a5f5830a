"""Reports in the admin: runs (read-only) and their discrepancies, with "fix selected".

Everything here is machine-written and read-only; the one write is the
action, which needs `reconciliation.fix_discrepancy`, confirms with the
count, calls `services.discrepancies_fix` and reports what it queued.
"""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from core.admin import ReadOnlyAdminMixin

from .compare import COMPARABLE_FIELDS
from .models import COUNT_CLASSES, Discrepancy, DiscrepancyClass, ReconciliationRun, SubClass
from .services import discrepancies_fix

CONFIRM_LIST_LIMIT = 50
SELECT_ACROSS_LIMIT = 1000  # hidden inputs in the confirmation page; beyond that select_across is passed on


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "started_at", "target", "status", "in_sync", "missing", "orphans", "drift", "duration",
                    "fixed_display", "discrepancies_link")
    list_filter = ("status", "target", "fixed")
    list_select_related = ("target",)
    date_hierarchy = "started_at"
    readonly_fields = ("target", "status", "trigger", "started_at", "finished_at", "duration_seconds", "counts_table",
                       "records_listed", "golden_scanned", "fix_requested", "fixed", "fixed_count", "error",
                       "discrepancies_link")
    fields = readonly_fields

    def _count(self, obj, klass):
        return obj.counts.get(klass, "—") if obj.status == ReconciliationRun.Status.SUCCEEDED else "—"

    @admin.display(description="in sync")
    def in_sync(self, obj):
        return self._count(obj, DiscrepancyClass.IN_SYNC)

    @admin.display(description="missing")
    def missing(self, obj):
        return self._count(obj, DiscrepancyClass.MISSING_IN_TARGET)

    @admin.display(description="orphans")
    def orphans(self, obj):
        return self._count(obj, DiscrepancyClass.ORPHAN_IN_TARGET)

    @admin.display(description="drift")
    def drift(self, obj):
        return self._count(obj, DiscrepancyClass.FIELD_DRIFT)

    @admin.display(description="duration", ordering="duration_seconds")
    def duration(self, obj):
        return f"{obj.duration_seconds:.1f} s" if obj.duration_seconds is not None else "—"

    @admin.display(description="fixed", ordering="fixed_count")
    def fixed_display(self, obj):
        return f"yes ({obj.fixed_count})" if obj.fixed else "no"

    @admin.display(description="counts")
    def counts_table(self, obj):
        if obj.status != ReconciliationRun.Status.SUCCEEDED:
            return "— (the run did not complete; no counts are shown for it)"
        rows = []
        for klass in COUNT_CLASSES:
            subs = obj.sub_counts.get(klass.value) or {}
            detail = ", ".join(f"{SubClass(k).label if k in SubClass.values else k}: {v}" for k, v in sorted(subs.items()))
            rows.append((klass.label, obj.counts.get(klass.value, 0), detail))
        return format_html("<table>{}</table>",
                           format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", rows))

    @admin.display(description="discrepancies")
    def discrepancies_link(self, obj):
        if obj.status != ReconciliationRun.Status.SUCCEEDED:
            return "—"
        url = reverse("admin:reconciliation_discrepancy_changelist") + f"?run__id__exact={obj.pk}"
        return format_html('<a href="{}">{} discrepancies</a>', url, obj.discrepancy_total())


class FieldFilter(admin.SimpleListFilter):
    title = "field"
    parameter_name = "field"

    def lookups(self, request, model_admin):
        return [(name, name) for name in COMPARABLE_FIELDS]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(field_names__contains=f",{self.value()},")
        return queryset


class FixedFilter(admin.SimpleListFilter):
    title = "fixed"
    parameter_name = "fixed"

    def lookups(self, request, model_admin):
        return [("yes", "fix queued"), ("no", "not fixed")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(fixed_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(fixed_at__isnull=True)
        return queryset


@admin.register(Discrepancy)
class DiscrepancyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "run_link", "target", "customer", "target_record_id", "klass", "sub_class", "fields_display",
                    "values_display", "fixed_at")
    list_filter = ("klass", "sub_class", FieldFilter, FixedFilter, "run__target")
    list_select_related = ("run__target",)
    search_fields = ("=customer_id", "=target_record_id")
    actions = ["fix_selected"]
    readonly_fields = ("run", "customer", "target_record_id", "klass", "sub_class", "fields", "values_table",
                       "golden_version", "delivered_version", "fixed_at", "fix_note")
    fields = readonly_fields
    list_per_page = 100

    @admin.display(description="run", ordering="run")
    def run_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:reconciliation_reconciliationrun_change",
                                                          args=[obj.run_id]), obj.run_id)

    @admin.display(description="target")
    def target(self, obj):
        return obj.run.target.name

    @admin.display(description="customer", ordering="customer_id")
    def customer(self, obj):
        if obj.customer_id is None:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("admin:canonical_customer_change", args=[obj.customer_id]),
                           obj.customer_id)

    @admin.display(description="fields")
    def fields_display(self, obj):
        return ", ".join(obj.fields) or "—"

    @admin.display(description="golden / last delivered / target")
    def values_display(self, obj):
        if not obj.values:
            return "—"
        return format_html_join(
            "", "<div><b>{}</b>: {} / {} / {}</div>",
            ((name, _show(v.get("golden")), _show(v.get("delivered")), _show(v.get("target")))
             for name, v in list(obj.values.items())[:6]),
        )

    @admin.display(description="values per field (golden / last delivered / target now)")
    def values_table(self, obj):
        rows = [(name, _show(v.get("golden")), _show(v.get("delivered")), _show(v.get("target")),
                 SubClass(v["sub_class"]).label if v.get("sub_class") in SubClass.values else "")
                for name, v in (obj.values or {}).items()]
        if not rows:
            return "—"
        head = "<tr><th>field</th><th>golden</th><th>last delivered</th><th>target now</th><th>verdict</th></tr>"
        return format_html("<table>" + head + "{}</table>",
                           format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows))

    def has_fix_permission(self, request):
        return request.user.has_perm("reconciliation.fix_discrepancy")

    @admin.action(permissions=["fix"], description="Fix selected discrepancies (queue upserts/deletes)")
    def fix_selected(self, request, queryset):
        fixable = queryset.filter(fixed_at__isnull=True, customer_id__isnull=False).exclude(
            Q(klass=DiscrepancyClass.ORPHAN_IN_TARGET) & Q(sub_class__in=[SubClass.UNKNOWN, SubClass.DUPLICATE]))
        count, fixable_count = queryset.count(), fixable.count()
        if request.POST.get("post") != "yes":
            select_across = request.POST.get("select_across") == "1" or count > SELECT_ACROSS_LIMIT
            items = [f"{d.run.target.name}: customer {d.customer_id} — {d.get_klass_display()}"
                     + (f" ({d.get_sub_class_display()})" if d.sub_class else "")
                     for d in fixable.select_related("run__target")[:CONFIRM_LIST_LIMIT]]
            return TemplateResponse(request, "admin/reconciliation/discrepancy/fix_confirmation.html", {
                **self.admin_site.each_context(request),
                "title": "Fix the selected discrepancies?",
                "opts": self.model._meta,
                "count": count, "fixable": fixable_count, "skipped": count - fixable_count,
                "items": items, "more": max(0, fixable_count - CONFIRM_LIST_LIMIT),
                "select_across": select_across,
                "selected": [] if select_across else [str(pk) for pk in queryset.values_list("pk", flat=True)],
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "media": self.media,
            })
        ids = list(fixable.values_list("pk", flat=True))
        result = discrepancies_fix(discrepancy_ids=ids)
        for item in Discrepancy.objects.filter(pk__in=ids, fixed_at__isnull=False)[:CONFIRM_LIST_LIMIT * 20]:
            self.log_change(request, item, f"fix queued: {item.fix_note}")
        skipped = count - result.fixed
        self.message_user(
            request,
            f"Queued fixes for {result.fixed} discrepancies ({result.queued} outbox messages)"
            + (f"; {skipped} skipped" if skipped else "") + ".",
            messages.SUCCESS if result.fixed else messages.WARNING,
        )
        return None


def _show(value) -> str:
    if value is None:
        return "∅"
    return str(value)
