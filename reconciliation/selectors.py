"""Reads of reconciliation results (the admin, /metrics, the command's summary)."""

from django.db.models import Max

from .models import COUNT_CLASSES, DiscrepancyClass, ReconciliationRun


def run_latest_succeeded_per_target():
    """The newest succeeded run of each target (one query for the ids, one for the rows)."""
    latest = (ReconciliationRun.objects.filter(status=ReconciliationRun.Status.SUCCEEDED)
              .values("target_id").annotate(last=Max("id")).values_list("last", flat=True))
    return ReconciliationRun.objects.filter(pk__in=list(latest)).select_related("target").order_by("target__name")


def reconciliation_latest_counts() -> dict[str, dict[str, int]]:
    """Per target name: discrepancies by class found by its latest succeeded run (for /metrics)."""
    result: dict[str, dict[str, int]] = {}
    for run in run_latest_succeeded_per_target():
        result[run.target.name] = {
            klass.value: int(run.counts.get(klass.value) or 0)
            for klass in COUNT_CLASSES if klass != DiscrepancyClass.IN_SYNC
        }
    return result
