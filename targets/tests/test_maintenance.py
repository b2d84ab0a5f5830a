"""Pause, resume and resync: what support does to a target, seen at the sandbox target."""

import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from canonical.changes import CustomerChange
from targets import maintenance
from targets.maintenance import target_pause, target_resume, target_resync_run, target_resync_start
from targets.models import DeliveredState, OutboxMessage, Target, TargetResync, TargetsError
from targets.services import outbox_deliver_due, outbox_enqueue, outbox_sweep, target_pump, worker_id
from targets.sync_config import import_targets
from targets.tasks import outbox_sweep as outbox_sweep_task

from .support import make_customer, make_target, sandbox, target_env  # noqa: F401

pytestmark = pytest.mark.django_db


def change(customer, operation="upsert"):
    with transaction.atomic():
        outbox_enqueue(changes=[CustomerChange(customer.pk, customer.version, operation, "evt_m")])


def test_a_paused_target_keeps_its_changes_and_gets_them_on_resume(sandbox):
    # given a paused crm
    target = make_target(sandbox, "crm")
    target_pause(target_name="crm", actor="support-anna", reason="crm maintenance")
    # when two changes of one customer arrive meanwhile
    customer = make_customer()
    change(customer)
    customer.version, customer.first_name = 2, "Maximilian"
    customer.save()
    change(customer)
    # then they coalesce into one pending message, and the pump sends nothing
    assert target_pump(target_id=target.pk, budget_seconds=1) == {"skipped": "paused"}
    assert outbox_sweep()["targets"] == 0
    message = OutboxMessage.objects.get(target=target)
    assert (message.status, message.version) == ("pending", 2)
    assert sandbox.state.requests_for("crm") == []
    # when support resumes it
    _, was_paused = target_resume(target_name="crm", actor="support-anna")
    stats = target_pump(target_id=target.pk, budget_seconds=2)
    # then the latest state arrives, once
    assert was_paused and stats.get("delivered") == 1
    assert sandbox.state.versions_for("crm", customer.pk) == [2]


def test_pause_records_who_and_why_and_is_idempotent(sandbox):
    make_target(sandbox, "cdp")
    target, changed = target_pause(target_name="cdp", actor="cli:pause_target (root)", reason="window")
    again, changed_again = target_pause(target_name="cdp", actor="someone else")
    assert changed and not changed_again
    assert (again.paused_by, again.pause_reason) == ("cli:pause_target (root)", "window")
    assert target_resume(target_name="cdp", actor="x")[1] and not target_resume(target_name="cdp", actor="x")[1]


def test_unknown_target_is_named(sandbox):
    make_target(sandbox, "cdp")
    with pytest.raises(TargetsError, match=r"no target named 'nope' \(targets: cdp\)"):
        target_pause(target_name="nope", actor="x")
    with pytest.raises(CommandError, match="no target named 'nope'"):
        call_command("pause_target", "nope")
    with pytest.raises(CommandError, match="no target named 'nope'"):
        call_command("resync_target", "nope")


def test_a_running_pump_stops_when_its_target_is_paused(sandbox, monkeypatch):
    # given a message due in 1.5 s, which a pump with 4 s left would wait for and send
    target = make_target(sandbox, "cdp")
    monkeypatch.setattr("targets.services.PAUSE_CHECK_SECONDS", 0.1)
    OutboxMessage.objects.create(target=target, customer=make_customer(), version=1,
                                 next_attempt_at=timezone.now() + timedelta(seconds=1.5))
    # when the target is paused while that pump runs
    Target.objects.filter(pk=target.pk).update(paused_at=timezone.now())
    started = time.monotonic()
    stats = outbox_deliver_due(target_id=target.pk, owner=worker_id(), deadline=time.monotonic() + 4,
                               wait_for_due=True)
    # then it stops within the check interval and sends nothing
    assert time.monotonic() - started < 1.0
    assert not stats and sandbox.state.requests_for("cdp") == []


def test_commands_pause_and_resume(sandbox, capsys):
    target = make_target(sandbox, "crm")
    call_command("pause_target", "crm", "--reason", "vendor upgrade")
    target.refresh_from_db()
    assert target.paused_at is not None and target.paused_by.startswith("cli:pause_target (")
    assert target.pause_reason == "vendor upgrade"
    call_command("resume_target", "crm")
    target.refresh_from_db()
    assert target.paused_at is None
    out = capsys.readouterr().out
    assert "target crm: paused" in out and "target crm: resumed; 0 message(s) to deliver" in out


def _acknowledged(target, customer, *, version, operation="upsert"):
    DeliveredState.objects.create(target=target, customer=customer, version=version, operation=operation,
                                  idempotency_key="k", delivered_at=timezone.now())


def test_resync_queues_exactly_what_the_target_missed(sandbox):
    # given a target that was disabled while customers changed
    target = make_target(sandbox, "cdp")
    current = make_customer(email="current@example.com", version=3)
    _acknowledged(target, current, version=3)
    behind = make_customer(email="behind@example.com", version=5)
    _acknowledged(target, behind, version=4)
    never = make_customer(email="never@example.com", version=1)
    erased_held = make_customer(email="", version=7, deleted_at=timezone.now())
    _acknowledged(target, erased_held, version=6)
    erased_unknown = make_customer(email="", version=2, deleted_at=timezone.now())
    erased_done = make_customer(email="", version=4, deleted_at=timezone.now())
    _acknowledged(target, erased_done, version=4, operation="delete")
    # when it is resynced in batches of two
    job = target_resync_start(target_name="cdp", actor="support", run_async=False)
    seen = []
    job = target_resync_run(resync_id=job.pk, batch_size=2, progress=lambda j: seen.append(j.seen))
    # then only the missed ones are queued, as upserts or deletes
    queued = dict(OutboxMessage.objects.filter(target=target).values_list("customer_id", "operation"))
    assert queued == {behind.pk: "upsert", never.pk: "upsert", erased_held.pk: "delete"}
    assert (job.status, job.total, job.seen, job.queued) == ("done", 6, 6, 3)
    assert seen == [2, 4, 6, 6]  # progress after each batch
    assert erased_unknown.pk not in queued and current.pk not in queued and erased_done.pk not in queued


def test_a_killed_resync_resumes_where_it_stopped(sandbox, monkeypatch):
    # given a job that stopped after its first batch (its worker died) and went stale
    target = make_target(sandbox, "cdp")
    customers = [make_customer(email=f"c{i}@example.com") for i in range(5)]
    job = target_resync_start(target_name="cdp", actor="support", run_async=False)
    TargetResync.objects.filter(pk=job.pk).update(cursor=customers[1].pk, seen=2, queued=0,
                                                  updated_at=timezone.now() - timedelta(minutes=10))
    enqueued = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda *args, **kw: enqueued.append(args))
    # when the sweeper runs
    assert outbox_sweep_task()["resyncs"] == 1
    assert enqueued == [(maintenance.RESYNC_TASK, job.pk)]
    # and the task runs
    job = target_resync_run(resync_id=job.pk)
    # then only the rest were looked at and queued
    assert (job.status, job.seen, job.queued) == ("done", 5, 3)
    assert set(OutboxMessage.objects.filter(target=target).values_list("customer_id", flat=True)) == {
        c.pk for c in customers[2:]}


def test_a_newer_resync_supersedes_a_running_one(sandbox):
    make_target(sandbox, "cdp")
    make_customer()
    first = target_resync_start(target_name="cdp", actor="a", run_async=False)
    second = target_resync_start(target_name="cdp", actor="b", run_async=False)
    assert target_resync_run(resync_id=first.pk).status == "superseded"
    assert target_resync_run(resync_id=second.pk).status == "done"


def test_a_disabled_target_gets_nothing_and_cannot_be_resynced(sandbox):
    target = make_target(sandbox, "cdp", enabled=False)
    change(make_customer())
    assert not OutboxMessage.objects.filter(target=target).exists()
    with pytest.raises(TargetsError, match="'cdp' is disabled: enable it first"):
        target_resync_start(target_name="cdp", actor="x")


def test_resync_command_shows_progress(sandbox, capsys):
    target = make_target(sandbox, "crm")
    for i in range(3):
        make_customer(email=f"p{i}@example.com")
    call_command("resync_target", "crm", "--batch-size", "2")
    out = capsys.readouterr().out
    assert "2 of 3 customers looked at, 2 queued" in out
    assert "done; 3 of 3 customers looked at, 3 queued" in out
    assert OutboxMessage.objects.filter(target=target).count() == 3


def test_reenabling_a_target_in_the_sync_config_says_to_resync(sandbox, tmp_path):
    make_target(sandbox, "cdp")
    Target.objects.filter(name="cdp").update(enabled=False)
    lines = import_targets({"cdp": {"base_url": sandbox.url + "/cdp", "token": "${CDP_TOKEN}"}})
    assert any("re-enabled" in line and "resync_target cdp" in line for line in lines), lines
