"""django-q2 tasks: thin wrappers over services; safe to run twice (the run lock)."""

import logging

from django.conf import settings

from . import services
from .models import ReconciliationRun

logger = logging.getLogger(__name__)


def reconcile_nightly() -> dict:
    """The nightly schedule: every enabled target; fixes only when `settings.RECONCILE_FIX` is true.

    Two of these running at once (two clusters, a slow night) cannot overlap on a
    target: the second finds the first's running run and skips that target.
    """
    fix = bool(getattr(settings, "RECONCILE_FIX", False))
    outcomes = services.targets_reconcile(fix=fix, trigger="schedule")
    summary = {"fix": fix, "runs": [o.as_json() for o in outcomes]}
    for outcome in outcomes:
        log = logger.warning if outcome.status == ReconciliationRun.Status.FAILED else logger.info
        log("nightly reconciliation of %s: %s (fix %s) %s", outcome.target, outcome.status,
            "on" if fix else "off", outcome.error or outcome.note or outcome.counts)
    return summary


def schedule_spec() -> dict:
    """Our entry of `settings.CUSTSYNC_SCHEDULES` (nightly at `RECONCILE_CRON`, default 02:30 UTC)."""
    return next(spec for spec in settings.CUSTSYNC_SCHEDULES if spec["name"] == "reconcile-nightly")
