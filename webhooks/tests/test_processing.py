"""The inbox processing task: one event in, golden record + outbox out, all or nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from canonical.models import Customer
from webhooks import processing
from targets.models import OutboxMessage
from tests.factories import inbox_event_create, source_create, target_create
from webhooks.models import InboxEvent

SEED_DATA = {"shop_id": 9981, "email": "Person@Example.com ", "phone": "0049 151 234567",
             "first_name": "Max", "last_name": "Mustermann", "marketing_opt_in": True}

pytestmark = pytest.mark.django_db


def _reload(event):
    return InboxEvent.objects.get(pk=event.pk)


def test_seed_event_becomes_a_golden_record_with_outbox_rows():
    # given
    target_create("cdp")
    target_create("crm", kind="crm", base_url="http://127.0.0.1:9/crm")
    event = inbox_event_create(source=source_create("shop"), data=SEED_DATA, event_id="evt_123")
    # when
    outcome = processing.inbox_event_process(event.pk)
    # then
    assert outcome == "processed"
    event = _reload(event)
    assert event.status == "processed" and event.processed_at is not None and event.attempts == 1
    customer = Customer.objects.get(pk=event.customer_id)
    assert (customer.email, customer.phone, customer.first_name) == ("person@example.com", "+49151234567", "Max")
    problems = {p["field"]: p["severity"] for p in event.problems}
    assert problems["phone"] == "warning"  # possible, not valid for DE: stored with a warning
    assert "marketing_opt_in" in problems  # consent is only taken from the consent platform
    assert customer.marketing_opt_in is None
    messages = OutboxMessage.objects.filter(customer=customer).order_by("target__name")
    assert [(m.target.name, m.version, m.correlation_id) for m in messages] == [
        ("cdp", customer.version, "evt_123"), ("crm", customer.version, "evt_123"),
    ]


def test_processing_a_processed_event_changes_nothing():
    target_create("cdp")
    event = inbox_event_create(source=source_create(), data=SEED_DATA)
    processing.inbox_event_process(event.pk)
    version = Customer.objects.get().version
    assert processing.inbox_event_process(event.pk) == "skipped"
    assert Customer.objects.get().version == version
    assert OutboxMessage.objects.count() == 1
    assert _reload(event).attempts == 1


def test_a_crash_mid_transaction_leaves_nothing_half_written(monkeypatch):
    # given: the outbox write fails after the golden record was changed in the same transaction
    target_create("cdp")
    event = inbox_event_create(source=source_create(), data=SEED_DATA)

    def boom(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(processing, "outbox_enqueue", boom)
    # when
    assert processing.inbox_event_process(event.pk) == "crashed"
    # then: no customer, no outbox row, the event is kept with the error and retried later
    assert Customer.objects.count() == 0
    assert OutboxMessage.objects.count() == 0
    event = _reload(event)
    assert event.status == "processing" and "disk on fire" in event.last_error
    # and once the lease ran out and the fault is gone, the retry applies it exactly once
    monkeypatch.undo()
    InboxEvent.objects.filter(pk=event.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert processing.inbox_event_process(event.pk) == "processed"
    assert Customer.objects.count() == 1 and OutboxMessage.objects.count() == 1


def test_an_event_that_cannot_be_applied_is_parked_as_failed():
    event = inbox_event_create(source=source_create(), data=SEED_DATA, schema_version=99)
    assert processing.inbox_event_process(event.pk) == "failed"
    event = _reload(event)
    assert event.status == "failed" and "99" in event.last_error
    assert Customer.objects.count() == 0


def test_a_leased_event_is_not_taken_by_a_second_worker():
    event = inbox_event_create(source=source_create(), data=SEED_DATA)
    assert processing.inbox_event_claim(event_pk=event.pk, owner="worker-a") is not None
    assert processing.inbox_event_claim(event_pk=event.pk, owner="worker-b") is None
    # worker-b cannot finish worker-a's lease either (fenced on the owner)
    assert processing.inbox_event_apply(event=_reload(event), owner="worker-b") == "lease_lost"


def test_poison_events_are_parked_after_max_attempts(monkeypatch):
    event = inbox_event_create(source=source_create(), data=SEED_DATA)
    monkeypatch.setattr(processing, "outbox_enqueue", lambda **kw: 1 / 0)
    for _ in range(processing.MAX_ATTEMPTS):
        InboxEvent.objects.filter(pk=event.pk).update(lease_expires_at=None)
        processing.inbox_event_process(event.pk)
    event = _reload(event)
    assert event.status == "failed" and event.attempts == processing.MAX_ATTEMPTS
    assert "ZeroDivisionError" in event.last_error


def test_sweeper_wakes_the_pump_for_events_whose_wake_up_was_lost():
    source = source_create()
    lost = inbox_event_create(source=source, data=SEED_DATA)
    fresh = inbox_event_create(source=source, data=SEED_DATA)
    done = inbox_event_create(source=source, data=SEED_DATA)
    old = timezone.now() - timedelta(minutes=5)
    InboxEvent.objects.filter(pk__in=[lost.pk, done.pk]).update(received_at=old)
    InboxEvent.objects.filter(pk=done.pk).update(status="processed")
    OrmQ.objects.all().delete()
    assert processing.inbox_sweep() == 1
    assert [q.func() for q in OrmQ.objects.all()] == ["webhooks.processing.inbox_pump"]  # a wake-up
    assert fresh.pk != lost.pk
    # and the pump it wakes takes the lost event (the fresh one is not stale, but claimable too)
    assert processing.inbox_pump() == {"processed": 2}


def test_sweeper_does_not_re_enqueue_a_queued_backlog_on_every_run():
    # given an event still waiting in the queue behind a backlog, 5 minutes old (found by the scale-out test:
    # every sweep re-enqueued the whole backlog)
    event = inbox_event_create(source=source_create(), data=SEED_DATA)
    InboxEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    OrmQ.objects.all().delete()
    # when the sweeper runs twice in a row
    assert processing.inbox_sweep() == 1
    assert processing.inbox_sweep() == 0
    # then it was enqueued once, and not again before a span as long as its age has passed
    assert OrmQ.objects.count() == 1
    marked = _reload(event)
    assert marked.status == "received" and marked.lease_owner == processing.SWEPT
    assert marked.lease_expires_at >= timezone.now() + timedelta(minutes=4)
    InboxEvent.objects.filter(pk=event.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert processing.inbox_sweep() == 1


def test_an_event_the_sweeper_re_enqueued_is_claimed_and_processed():
    event = inbox_event_create(source=source_create(), data=SEED_DATA)
    InboxEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    assert processing.inbox_sweep() == 1
    assert processing.inbox_event_process(event.pk) == "processed"
    event = _reload(event)
    assert event.status == "processed" and event.lease_owner == "" and event.attempts == 1
    assert processing.inbox_sweep() == 0


def test_sweeper_leaves_a_live_lease_alone_and_takes_an_expired_one_at_once():
    source = source_create()
    live = inbox_event_create(source=source, data=SEED_DATA)
    dead = inbox_event_create(source=source, data=SEED_DATA)
    old = timezone.now() - timedelta(minutes=5)
    InboxEvent.objects.filter(pk=live.pk).update(received_at=old, status="processing", lease_owner="w1",
                                                lease_expires_at=timezone.now() + timedelta(seconds=60))
    InboxEvent.objects.filter(pk=dead.pk).update(received_at=old, status="processing", lease_owner="w2",
                                                lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert processing.inbox_sweep() == 1
    assert _reload(live).lease_owner == "w1"
    assert _reload(dead).lease_owner == processing.SWEPT
