"""reconcile against real sandbox targets: every class and sub-class, --fix converging, paging, failures."""

import pytest
from django.core.management.base import CommandError
from django.db import transaction

from canonical.changes import CustomerChange
from targets.models import DeliveredState, OutboxMessage
from targets.services import outbox_enqueue
from targets.tests.support import make_customer, make_target

from reconciliation.models import Discrepancy, ReconciliationRun, SpilledRecord
from reconciliation.selectors import reconciliation_latest_counts
from reconciliation.services import targets_reconcile, runs_purge

from .support import change, deliver, enqueue, erase, reconcile, run_of

pytestmark = pytest.mark.django_db


def person(n: int, **fields):
    values = dict(email=f"person{n}@example.com", phone=f"+49151234567{n % 100:02d}", first_name=f"First{n}",
                  last_name=f"Last{n}", external_ids={"shop": str(9000 + n)})
    values.update(fields)
    return make_customer(**values)


@pytest.fixture
def seeded(sandbox):
    """cdp and crm holding known differences of every class (built through real deliveries)."""
    cdp, crm = make_target(sandbox, "cdp"), make_target(sandbox, "crm")
    c = {name: person(i) for i, name in enumerate(
        ["in_sync", "never", "deleted_there", "edited", "behind", "foreign", "erased", "merged", "survivor"], 1)}
    for name in ("in_sync", "deleted_there", "edited", "behind", "erased", "merged", "survivor"):
        enqueue(c[name])
    deliver(cdp), deliver(crm)
    store = sandbox.state.stores
    with sandbox.state.lock:
        # removed by hand in the targets
        store["cdp"].pop(c["deleted_there"].pk)
        store["crm"].pop(c["deleted_there"].pk)
        # edited by hand in the targets
        store["cdp"][c["edited"].pk]["profile"]["first_name"] = "Hand-Edited"
        store["crm"][c["edited"].pk]["email"] = "typo@example.org"
        # a record nobody delivered (imported into the target before custsync)
        body = {"id": c["foreign"].pk, "email": "other@example.com", "profile": {"first_name": "First6"}}
        store["cdp"][c["foreign"].pk] = body
        # records that never were golden records
        store["cdp"][999_999] = {"id": 999_999, "email": "stranger@example.com"}
        store["crm"][999_998] = {"email": "stranger@example.com", "externalIds": {"custsync_id": 999_998}}
    # a newer golden state whose delivery failed (dead letter): the targets lag behind
    change(c["behind"], first_name="Renamed")
    sandbox.state.set_faults("*", force_status=400)
    enqueue(c["behind"])
    deliver(cdp), deliver(crm)
    sandbox.state.clear_faults()
    assert OutboxMessage.objects.filter(status="dead").count() == 2
    # golden records erased / merged away while the targets still hold them (their deletes not sent)
    erase(c["erased"])
    change(c["merged"], merged_into=c["survivor"], email="", phone="", first_name="", last_name="")
    return {"cdp": cdp, "crm": crm, "customers": c, "sandbox": sandbox}


def by_customer(run_id):
    return {(d.customer_id, d.target_record_id): d for d in Discrepancy.objects.filter(run_id=run_id)}


def test_every_class_and_sub_class_is_found_on_real_targets(seeded):
    c = seeded["customers"]

    report, _, summary = reconcile()

    cdp, crm = run_of(report, "cdp"), run_of(report, "crm")
    assert cdp["status"] == crm["status"] == "succeeded"
    assert cdp["counts"] == {"in_sync": 2, "missing_in_target": 2, "orphan_in_target": 3, "field_drift": 3}
    assert cdp["sub_counts"] == {
        "field_drift": {"delivery_behind": 1, "edited_in_target": 1, "never_delivered": 1},
        "missing_in_target": {"deleted_in_target": 1, "never_delivered": 1},
        "orphan_in_target": {"erased": 1, "merged": 1, "unknown": 1},
    }
    assert crm["counts"] == {"in_sync": 2, "missing_in_target": 3, "orphan_in_target": 3, "field_drift": 2}
    found = by_customer(cdp["run_id"])
    edited = found[(c["edited"].pk, str(c["edited"].pk))]
    assert (edited.klass, edited.sub_class, edited.fields) == ("field_drift", "edited_in_target", ["first_name"])
    assert edited.values["first_name"] == {"golden": "First4", "delivered": "First4", "target": "Hand-Edited",
                                           "sub_class": "edited_in_target"}
    behind = found[(c["behind"].pk, str(c["behind"].pk))]
    assert (behind.sub_class, behind.fields, behind.golden_version, behind.delivered_version) == (
        "delivery_behind", ["first_name"], 2, 1)
    assert behind.values["first_name"] == {"golden": "Renamed", "delivered": "First5", "target": "First5",
                                           "sub_class": "delivery_behind"}
    foreign = found[(c["foreign"].pk, str(c["foreign"].pk))]
    assert foreign.sub_class == "never_delivered"
    assert set(foreign.fields) == {"external_ids", "email", "phone", "last_name", "marketing_opt_in"}
    assert found[(c["deleted_there"].pk, "")].sub_class == "deleted_in_target"
    assert found[(c["never"].pk, "")].sub_class == "never_delivered"
    assert found[(c["erased"].pk, str(c["erased"].pk))].sub_class == "erased"
    assert found[(c["merged"].pk, str(c["merged"].pk))].sub_class == "merged"
    assert found[(None, "999999")].sub_class == "unknown"
    crm_edited = by_customer(crm["run_id"])[(c["edited"].pk, str(c["edited"].pk))]
    assert (crm_edited.fields, crm_edited.values["email"]["target"]) == (["email"], "typo@example.org")
    # the human summary, without any personal value in it
    assert "cdp: succeeded" in summary and "Hand-Edited" not in summary and "person4@" not in summary
    assert reconciliation_latest_counts()["cdp"] == {"missing_in_target": 2, "orphan_in_target": 3, "field_drift": 3}
    assert not SpilledRecord.objects.exists()


def test_fix_converges_and_leaves_strangers_alone(seeded):
    cdp, crm, c, sandbox = seeded["cdp"], seeded["crm"], seeded["customers"], seeded["sandbox"]

    report, _, _ = reconcile("--fix")
    first = run_of(report, "cdp")
    assert first["fixed"] is True and first["fixes_queued"] == 7  # 2 missing + 3 drift + 2 deletes
    assert all(m.correlation_id == f"reconcile:{first['run_id']}"
               for m in OutboxMessage.objects.filter(target=cdp, status="pending"))
    deliver(cdp), deliver(crm)
    report, _, _ = reconcile()

    for name in ("cdp", "crm"):
        assert run_of(report, name)["counts"] == {"in_sync": 7, "missing_in_target": 0, "orphan_in_target": 1,
                                                  "field_drift": 0}
    # the hand edit was overwritten although the target had acknowledged that version before
    assert sandbox.state.record("cdp", c["edited"].pk)["profile"]["first_name"] == "First4"
    assert sandbox.state.record("cdp", c["erased"].pk) is None and sandbox.state.record("cdp", c["merged"].pk) is None
    assert sandbox.state.record("cdp", 999_999) is not None  # never a golden record: reported, not deleted
    run = ReconciliationRun.objects.get(pk=first["run_id"])
    assert run.fixed and run.fixed_count == 7
    assert Discrepancy.objects.filter(run=run, fixed_at__isnull=False).count() == 7


def test_fix_sends_only_to_the_reconciled_target(seeded):
    cdp, crm = seeded["cdp"], seeded["crm"]
    pending_crm = OutboxMessage.objects.filter(target=crm, status="pending").count()

    reconcile("--target", "cdp", "--fix")

    assert OutboxMessage.objects.filter(target=cdp, status="pending").count() == 7
    assert OutboxMessage.objects.filter(target=crm, status="pending").count() == pending_crm


def test_erased_customer_still_in_target_is_an_orphan_fixed_by_delete(sandbox):
    cdp = make_target(sandbox, "cdp")
    customer = person(1)
    enqueue(customer)
    deliver(cdp)
    erase(customer)  # the erasure's delete never reached the target

    report, _, _ = reconcile("--target", "cdp", "--fix")
    assert run_of(report, "cdp")["counts"]["orphan_in_target"] == 1
    deliver(cdp)

    assert sandbox.state.record("cdp", customer.pk) is None
    assert DeliveredState.objects.get(target=cdp, customer=customer).operation == "delete"
    report, _, _ = reconcile("--target", "cdp")
    assert run_of(report, "cdp")["counts"] == {"in_sync": 0, "missing_in_target": 0, "orphan_in_target": 0,
                                               "field_drift": 0}


def test_pagination_across_many_pages_with_a_small_page_size(sandbox):
    cdp, crm = make_target(sandbox, "cdp"), make_target(sandbox, "crm")
    customers = [person(i) for i in range(1, 58)]
    with transaction.atomic():
        outbox_enqueue(changes=[CustomerChange(x.pk, x.version, "upsert", "evt") for x in customers])
    deliver(cdp, seconds=30), deliver(crm, seconds=30)
    with sandbox.state.lock:
        sandbox.state.stores["crm"][customers[40].pk]["lastName"] = "Edited"
    sandbox.state.requests.clear()

    report, _, _ = reconcile("--page-size", "5", "--chunk-size", "7")

    assert run_of(report, "cdp")["counts"] == {"in_sync": 57, "missing_in_target": 0, "orphan_in_target": 0,
                                               "field_drift": 0}
    assert run_of(report, "crm")["counts"]["field_drift"] == 1
    assert run_of(report, "crm")["records_listed"] == 57
    lists = [r for r in sandbox.state.requests_for() if r["method"] == "GET"]
    assert len([r for r in lists if r["system"] == "cdp"]) == 12 and len([r for r in lists if r["system"] == "crm"]) == 12


def test_listing_order_is_not_assumed(sandbox, monkeypatch):
    """A target whose listing comes in any order (real ones may) gives the same result."""
    import random

    from targets.adapters.cdp import CdpAdapter

    cdp = make_target(sandbox, "cdp")
    customers = [person(i) for i in range(1, 30)]
    for x in customers:
        enqueue(x)
    deliver(cdp)
    original = CdpAdapter.iter_records
    seed = 4242
    print(f"shuffle seed {seed}")

    def shuffled(self, *, page_size=100):
        records = list(original(self, page_size=page_size))
        random.Random(seed).shuffle(records)
        yield from records

    monkeypatch.setattr(CdpAdapter, "iter_records", shuffled)
    report, _, _ = reconcile("--chunk-size", "4")
    assert run_of(report, "cdp")["counts"]["in_sync"] == 29


def test_target_failing_mid_run_is_recorded_failed_and_a_later_run_is_clean(sandbox):
    cdp = make_target(sandbox, "cdp")
    customers = [person(i) for i in range(1, 21)]
    for x in customers:
        enqueue(x)
    deliver(cdp)
    # page 1 and 2 answer, page 3 is a 503
    sandbox.state.set_faults("cdp", plan=[{}, {}, {"status": 503}])

    with pytest.raises(CommandError, match="failed for cdp"):
        reconcile("--target", "cdp", "--page-size", "5")

    run = ReconciliationRun.objects.get()
    assert run.status == "failed" and run.counts == {} and run.finished_at is not None
    assert "HTTP 503" in run.error and "after 10 records listed" in run.error
    assert not Discrepancy.objects.exists() and not SpilledRecord.objects.exists()

    report, _, _ = reconcile("--target", "cdp", "--page-size", "5")
    assert run_of(report, "cdp")["status"] == "succeeded"
    assert run_of(report, "cdp")["counts"]["in_sync"] == 20
    assert reconciliation_latest_counts() == {"cdp": {"missing_in_target": 0, "orphan_in_target": 0,
                                                      "field_drift": 0}}


def test_target_down_fails_with_the_reason(sandbox):
    make_target(sandbox, "cdp")
    sandbox.stop()
    with pytest.raises(CommandError):
        reconcile("--target", "cdp")
    run = ReconciliationRun.objects.get()
    assert run.status == "failed" and "connection error" in run.error


def test_json_last_line_shape_and_webhook_targets_skipped(sandbox):
    make_target(sandbox, "cdp")
    make_target(sandbox, "webhook", name="n8n")
    person(1)

    report, stdout, stderr = reconcile("-v", "2")

    assert set(report) == {"runs"}
    cdp, n8n = run_of(report, "cdp"), run_of(report, "n8n")
    assert {"target", "status", "counts", "fixed"} <= set(cdp)
    assert set(cdp["counts"]) == {"in_sync", "missing_in_target", "orphan_in_target", "field_drift"}
    assert cdp["fixed"] is False and cdp["counts"]["missing_in_target"] == 1
    assert n8n["status"] == "skipped" and "no listing" in n8n["note"]
    assert stdout.strip().count("\n") == 0  # with --json only the object goes to stdout
    assert "cdp: succeeded" in stderr and "[cdp] comparing" in stderr


def test_dry_run_stores_nothing_and_fixes_nothing(seeded):
    before = OutboxMessage.objects.count()

    report, _, _ = reconcile("--dry-run")

    assert run_of(report, "cdp")["counts"]["field_drift"] == 3 and run_of(report, "cdp")["run_id"] is None
    assert not ReconciliationRun.objects.exists() and not Discrepancy.objects.exists()
    assert not SpilledRecord.objects.exists() and OutboxMessage.objects.count() == before
    with pytest.raises(CommandError, match="exclude"):
        reconcile("--dry-run", "--fix")


def test_a_second_run_while_one_is_running_skips_that_target(sandbox):
    cdp = make_target(sandbox, "cdp")
    from django.utils import timezone

    holder = ReconciliationRun.objects.create(target=cdp, started_at=timezone.now(), lease_owner="other",
                                              lease_expires_at=timezone.now() + timezone.timedelta(minutes=5))
    [outcome] = targets_reconcile(target_name="cdp")
    assert outcome.status == "skipped" and f"run {holder.pk}" in outcome.note

    # its process died: once the lease expires the next run fails it and starts clean
    ReconciliationRun.objects.filter(pk=holder.pk).update(lease_expires_at=timezone.now() - timezone.timedelta(seconds=1))
    [outcome] = targets_reconcile(target_name="cdp")
    assert outcome.status == "succeeded"
    holder.refresh_from_db()
    assert holder.status == "failed" and "lease expired" in holder.error


def test_unknown_target_is_a_command_error(db):
    with pytest.raises(CommandError, match="no target named"):
        reconcile("--target", "nope")


def test_retention_keeps_the_last_runs_per_target(sandbox, settings):
    cdp = make_target(sandbox, "cdp")
    person(1)
    settings.RECONCILE_KEEP_RUNS = 2
    for _ in range(4):
        reconcile("--target", "cdp")
    assert ReconciliationRun.objects.filter(target=cdp).count() == 2
    assert Discrepancy.objects.count() == 2  # one "missing" per kept run
    assert runs_purge(target_id=cdp.pk, keep=1) == 1
