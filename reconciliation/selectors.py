"""Reads of reconciliation results (the admin, /metrics, the command's summary), and the rule of what is fixable."""

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from django.db.models import Max, QuerySet

from canonical.models import Customer

from .models import COUNT_CLASSES, Discrepancy, DiscrepancyClass, ReconciliationRun, SubClass

PREVIEW_CHUNK = 2000


def runs_latest_succeeded():
    """The newest succeeded run of each target (one query for the ids, one for the rows)."""
    latest = (ReconciliationRun.objects.filter(status=ReconciliationRun.Status.SUCCEEDED)
              .values("target_id").annotate(last=Max("id")).values_list("last", flat=True))
    return ReconciliationRun.objects.filter(pk__in=list(latest)).select_related("target").order_by("target__name")


def reconciliation_latest_counts() -> dict[str, dict[str, int]]:
    """Per target name: discrepancies by class found by its latest succeeded run (for /metrics)."""
    result: dict[str, dict[str, int]] = {}
    for run in runs_latest_succeeded():
        result[run.target.name] = {
            klass.value: int(run.counts.get(klass.value) or 0)
            for klass in COUNT_CLASSES if klass != DiscrepancyClass.IN_SYNC
        }
    return result


# --- what a fix may touch --------------------------------------------------------------

def discrepancy_fix_skip_reason(item: Discrepancy, *, customer_ids: Collection[int]) -> str:
    """The one rule of what `services.discrepancies_fix` fixes: "" when `item` is fixable, else why not.

    `item` needs `run.target` loaded; `customer_ids` holds the golden records that exist (a merged or
    erased record still exists, as a tombstone, and is fixed with a delete). The fix applies it under the
    customers' locks; the admin's confirmation applies it to say how many will be fixed.
    """
    if item.fixed_at is not None:
        return "already fixed"
    if item.klass == DiscrepancyClass.IN_SYNC:
        return "in sync"
    if item.customer_id is None or item.sub_class in (SubClass.UNKNOWN, SubClass.DUPLICATE):
        return "orphan that never was a golden record (reported, not deleted)"
    if item.customer_id not in customer_ids:
        return "golden record no longer exists"
    if not item.run.target.enabled:
        return "target disabled"
    return ""


@dataclass
class FixPreview:
    fixable_ids: list[int] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # reason -> count


def discrepancies_fix_preview(*, queryset: QuerySet) -> FixPreview:
    """What `discrepancies_fix` would do with these discrepancies now: the fixable ids and why the others are not.

    Reads in chunks of PREVIEW_CHUNK (two queries each), so a "select all" of a large run stays bounded in memory
    per chunk; nothing is locked, so the fix itself decides again.
    """
    preview = FixPreview()
    rows = (queryset.select_related("run__target").order_by("pk")
            .only("id", "customer_id", "klass", "sub_class", "fixed_at", "run__id", "run__target__id",
                  "run__target__enabled"))
    last_pk = 0
    while True:
        chunk = list(rows.filter(pk__gt=last_pk)[:PREVIEW_CHUNK])
        if not chunk:
            return preview
        last_pk = chunk[-1].pk
        wanted = {d.customer_id for d in chunk if d.customer_id is not None}
        existing = set(Customer.objects.filter(pk__in=wanted).values_list("pk", flat=True))
        for item in chunk:
            reason = discrepancy_fix_skip_reason(item, customer_ids=existing)
            if reason:
                preview.skipped[reason] += 1
            else:
                preview.fixable_ids.append(item.pk)
