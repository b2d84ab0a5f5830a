"""Reports in the admin: runs (read-only) and their discrepancies, with "fix selected".

Everything here is machine-written and read-only; the one write is the
action, which needs `reconciliation.fix_discrepancy`, confirms with the
count (`selectors.discrepancies_fix_preview`, the rule `discrepancies_fix`
applies), calls `services.discrepancies_fix` and reports what it queued.
Tables are templates (`admin/reconciliation/*.html`) fed plain rows.
"""

from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html

from core.admin import CONFIRM_LIST_LIMIT, ReadOnlyAdminMixin, action_confirmation

from .compare import COMPARABLE_FIELDS
from .models import COUNT_CLASSES, Discrepancy, DiscrepancyClass, ReconciliationRun, SubClass
from .selectors import discrepancies_fix_preview
from .services import discrepancies_fix

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
            rows.append({"label": klass.label, "count": obj.counts.get(klass.value, 0), "detail": detail})
        return render_to_string("admin/reconciliation/run_counts.html", {"rows": rows})

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
        rows = _value_rows(obj)[:6]
        if not rows:
            return "—"
        return render_to_string("admin/reconciliation/discrepancy_values_short.html", {"rows": rows})

    @admin.display(description="values per field (golden / last delivered / target now)")
    def values_table(self, obj):
        rows = _value_rows(obj)
        if not rows:
            return "—"
        return render_to_string("admin/reconciliation/discrepancy_values.html", {"rows": rows})

    def has_fix_permission(self, request):
        return request.user.has_perm("reconciliation.fix_discrepancy")

    @admin.action(permissions=["fix"], description="Fix selected discrepancies (queue upserts/deletes)")
    def fix_selected(self, request, queryset):
        if request.POST.get("post") != "yes":
            preview = discrepancies_fix_preview(queryset=queryset)
            count, skipped = len(preview.fixable_ids), sum(preview.skipped.values())
            select_across = request.POST.get("select_across") == "1" or count + skipped > SELECT_ACROSS_LIMIT
            shown = (Discrepancy.objects.filter(pk__in=preview.fixable_ids[:CONFIRM_LIST_LIMIT])
                     .select_related("run__target").order_by("pk"))
            return action_confirmation(
                self, request, queryset=queryset, action="fix_selected", select_across=select_across,
                title="Fix the selected discrepancies?", count=count, count_id="fix-count",
                count_note="will be fixed", skipped=skipped,
                skipped_note=f"{skipped} will be skipped ("
                             + "; ".join(f"{reason}: {n}" for reason, n in sorted(preview.skipped.items())) + ").",
                explanation="Each fix queues an upsert (customer live) or a delete (customer erased or merged away) "
                            "of the current golden record to the discrepancy's target, through the outbox (rate "
                            "limit, retries, dead-letter queue).",
                items=[f"{d.run.target.name}: customer {d.customer_id} — {d.get_klass_display()}"
                       + (f" ({d.get_sub_class_display()})" if d.sub_class else "") for d in shown],
                confirm_label="Yes, queue the fixes",
            )
        ids = list(queryset.values_list("pk", flat=True))
        result = discrepancies_fix(discrepancy_ids=ids)
        for item in Discrepancy.objects.filter(pk__in=result.fixed_ids).only("id", "klass", "customer_id",
                                                                              "target_record_id", "fix_note"):
            self.log_change(request, item, f"fix queued: {item.fix_note}")
        skipped = len(ids) - result.fixed
        self.message_user(
            request,
            f"Queued fixes for {result.fixed} discrepancies ({result.queued} outbox messages)"
            + (f"; {skipped} skipped" if skipped else "") + ".",
            messages.SUCCESS if result.fixed else messages.WARNING,
        )
        return None


def _value_rows(obj) -> list[dict[str, str]]:
    """Per field of a discrepancy: golden, last delivered and target values as text, and the verdict."""
    return [{"field": name, "golden": _show(v.get("golden")), "delivered": _show(v.get("delivered")),
             "target": _show(v.get("target")),
             "verdict": SubClass(v["sub_class"]).label if v.get("sub_class") in SubClass.values else ""}
            for name, v in (obj.values or {}).items()]


def _show(value) -> str:
    if value is None:
        return "∅"
    return str(value)
