"""The nightly task: every target, fix off unless RECONCILE_FIX; never two runs of one target at once."""

import threading

import pytest
from django.db import connection
from django_q.models import Schedule

from custsync_project.schedules import schedules_ensure
from targets.models import OutboxMessage
from targets.tests.support import make_customer, make_target

from reconciliation.models import ReconciliationRun
from reconciliation.tasks import reconcile_nightly, schedule_spec


@pytest.mark.django_db
def test_nightly_reconciles_every_target_without_fixing_by_default(sandbox, settings):
    make_target(sandbox, "cdp"), make_target(sandbox, "crm"), make_target(sandbox, "webhook", name="n8n")
    make_customer()
    settings.RECONCILE_FIX = False

    summary = reconcile_nightly()

    assert summary["fix"] is False
    assert {r["target"]: r["status"] for r in summary["runs"]} == {"cdp": "succeeded", "crm": "succeeded",
                                                                   "n8n": "skipped"}
    assert ReconciliationRun.objects.filter(trigger="schedule").count() == 2
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db
def test_nightly_fixes_when_configured(sandbox, settings):
    make_target(sandbox, "cdp")
    make_customer()
    settings.RECONCILE_FIX = True
    summary = reconcile_nightly()
    assert summary["fix"] is True and summary["runs"][0]["fixes_queued"] == 1
    assert OutboxMessage.objects.get().correlation_id == f"reconcile:{summary['runs'][0]['run_id']}"


@pytest.mark.django_db
def test_the_schedule_is_created_once(settings):
    spec = schedule_spec()
    assert spec["func"] == "reconciliation.tasks.reconcile_nightly" and spec["cron"] == settings.RECONCILE_CRON
    schedules_ensure(specs=[spec])
    lines = schedules_ensure(specs=[spec])
    assert lines == ["schedule reconcile-nightly: unchanged"]
    assert Schedule.objects.filter(func="reconciliation.tasks.reconcile_nightly").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_nightly_runs_never_overlap_on_a_target(sandbox):
    make_target(sandbox, "cdp"), make_target(sandbox, "crm")
    for n in range(30):
        make_customer(email=f"p{n}@example.com", phone=f"+491512345{n:04d}")
    sandbox.state.set_faults("*", latency_ms=150)  # each listing page takes a while: the runs overlap in time
    barrier, results, errors = threading.Barrier(2), [], []

    def worker():
        try:
            barrier.wait(timeout=10)
            results.append(reconcile_nightly())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(results) == 2

    statuses = [r["status"] for summary in results for r in summary["runs"]]
    assert "skipped" in statuses and set(statuses) <= {"skipped", "succeeded"}
    for name in ("cdp", "crm"):
        runs = list(ReconciliationRun.objects.filter(target__name=name).order_by("started_at"))
        assert runs and all(run.status == "succeeded" for run in runs)
        assert all(run.counts["missing_in_target"] == 30 for run in runs)
        # never overlapping: each run started after the previous one of the same target finished
        assert all(later.started_at >= earlier.finished_at for earlier, later in zip(runs, runs[1:]))
