"""The inbox pump: batches of events in one transaction, the same outcome as one by one."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from canonical import services as canonical_services
from canonical.identity import Identifiers, identifier_hash
from canonical.models import Customer
from webhooks import processing
from targets.models import OutboxMessage
from tests.factories import inbox_event_create, source_create, target_create
from webhooks.models import InboxEvent

pytestmark = pytest.mark.django_db


def _upsert(source, n, **extra):
    data = {"shop_id": 1000 + n, "email": f"person{n}@example.com", "first_name": f"Name{n}", **extra}
    return inbox_event_create(source=source, data=data, event_id=f"evt_{n}_{extra.get('last_name', '')}")


def _statuses():
    return dict(InboxEvent.objects.values_list("event_id", "status"))


def test_the_pump_applies_every_event_in_batches_and_writes_the_outbox_once_per_batch(settings, monkeypatch):
    # given: 7 events for 5 customers, two of them changed twice; batches of 3
    monkeypatch.setattr(processing, "BATCH_SIZE", 3)
    target_create("cdp")
    shop = source_create("shop")
    for n in range(5):
        _upsert(shop, n)
    _upsert(shop, 1, last_name="Second")
    _upsert(shop, 2, last_name="Third")
    # when
    with CaptureQueriesContext(connection) as queries:
        totals = processing.inbox_pump()
    # then: all processed, in 3 batches (3 claims that found events, one that found none)
    assert totals == {"processed": 7}
    assert set(_statuses().values()) == {"processed"}
    sqls = [q["sql"] for q in queries.captured_queries]
    assert len([s for s in sqls if s.startswith('UPDATE "webhooks_inboxevent" SET "status" = \'processing\'')]) == 3
    # one multi-row INSERT per batch that created outbox rows; the third batch only coalesced into pending rows
    assert len([s for s in sqls if s.startswith('INSERT INTO "targets_outboxmessage"')]) == 2
    assert Customer.objects.count() == 5
    assert Customer.objects.get(email="person1@example.com").last_name == "Second"
    # one outbox row per customer, at its latest version (coalesced)
    rows = {m.customer_id: m.version for m in OutboxMessage.objects.all()}
    assert rows == {c.pk: c.version for c in Customer.objects.all()}
    for event in InboxEvent.objects.all():
        assert event.customer_id is not None and event.attempts == 1 and event.lease_owner == ""


def test_a_batch_gives_the_same_golden_records_as_one_event_at_a_time(monkeypatch):
    shop = source_create("shop")
    crm = source_create("crm")
    events = [
        _upsert(shop, 1), _upsert(shop, 2, last_name="A"),
        inbox_event_create(source=crm, data={"crm_id": "C-1", "email": "person1@example.com", "last_name": "Crm"},
                           event_id="crm-1"),
        inbox_event_create(source=crm, data={"crm_id": "C-2", "email": "person2@example.com", "phone": "+4915123"},
                           event_id="crm-2"),
    ]
    processing.inbox_pump()
    batched = {c.email: (c.first_name, c.last_name, c.phone, c.version) for c in Customer.objects.all()}
    # the same events again, one task each, on a clean slate
    Customer.objects.all().delete()
    InboxEvent.objects.update(status="received", customer=None, processed_at=None, attempts=0)
    for event in events:
        assert processing.inbox_event_process(event.pk) == "processed"
    single = {c.email: (c.first_name, c.last_name, c.phone, c.version) for c in Customer.objects.all()}
    assert batched == single and len(batched) == 2


def test_an_event_that_can_never_apply_is_parked_without_holding_back_the_batch():
    shop = source_create("shop")
    good = _upsert(shop, 1)
    bad = inbox_event_create(source=shop, data={"first_name": "No identifier"}, event_id="bad")
    future = inbox_event_create(source=shop, data={"shop_id": 7}, event_id="v99", schema_version=99)
    assert processing.inbox_pump() == {"processed": 1, "failed": 2}
    assert _statuses() == {good.event_id: "processed", "bad": "failed", "v99": "failed"}
    assert "no usable identifier" in InboxEvent.objects.get(pk=bad.pk).last_error
    assert "99" in InboxEvent.objects.get(pk=future.pk).last_error


def test_a_crash_inside_a_batch_rolls_it_back_and_the_events_are_applied_one_by_one(monkeypatch):
    # given: applying event 2 crashes (only inside the batch; alone it works the second time)
    target_create("cdp")
    shop = source_create("shop")
    events = [_upsert(shop, n) for n in range(4)]
    real = canonical_services.prepared_event_apply
    crashed = []

    def flaky(*, prepared, **kwargs):
        if prepared.event.event_id == events[2].event_id and not crashed:
            crashed.append(1)
            raise RuntimeError("disk on fire")
        return real(prepared=prepared, **kwargs)

    monkeypatch.setattr(processing, "prepared_event_apply", flaky)
    # when
    totals = processing.inbox_pump()
    # then: nothing of the batch was written twice; every event applied exactly once
    assert totals == {"processed": 4}
    assert Customer.objects.count() == 4 and all(c.version == 1 for c in Customer.objects.all())
    assert OutboxMessage.objects.count() == 4


def test_an_event_that_crashes_alone_too_is_kept_for_a_retry_and_the_rest_commit(monkeypatch):
    shop = source_create("shop")
    events = [_upsert(shop, n) for n in range(3)]
    real = canonical_services.prepared_event_apply

    def poisoned(*, prepared, **kwargs):
        if prepared.event.event_id == events[1].event_id:
            raise ValueError("poison")
        return real(prepared=prepared, **kwargs)

    monkeypatch.setattr(processing, "prepared_event_apply", poisoned)
    monkeypatch.setattr(canonical_services, "prepared_event_apply", poisoned)  # the one-event path goes through event_apply
    assert processing.inbox_pump() == {"processed": 2, "crashed": 1}
    poisoned_row = InboxEvent.objects.get(pk=events[1].pk)
    assert poisoned_row.status == "processing" and "poison" in poisoned_row.last_error
    assert Customer.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_event_whose_identifiers_another_transaction_holds_is_deferred_not_waited_for():
    import psycopg2
    from django.conf import settings

    shop = source_create("shop")
    busy, free = _upsert(shop, 1), _upsert(shop, 2)
    events = processing.inbox_batch_claim(owner="pump-test", limit=10)
    assert [e.pk for e in events] == [busy.pk, free.pk]
    key = Identifiers(external_ids={"shop": "1001"}, email=None, phone=None).keys()[0]
    lock_id = int.from_bytes(bytes.fromhex(identifier_hash(key))[:8], "big", signed=True)
    db = settings.DATABASES["default"]
    other = psycopg2.connect(dbname=connection.settings_dict["NAME"], user=db["USER"], host=db["HOST"],
                             port=db["PORT"], password=db["PASSWORD"])
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN; SELECT pg_advisory_xact_lock(%s)", [lock_id])
        result = processing.inbox_batch_apply(events=events, owner="pump-test")
        assert result.outcomes == {free.pk: "processed"}
        assert [e.pk for e in result.deferred] == [busy.pk]
        assert InboxEvent.objects.get(pk=busy.pk).status == "processing"  # still ours, offered to the next batch
    finally:
        other.rollback()
        other.close()
    result = processing.inbox_batch_apply(events=result.deferred, owner="pump-test")
    assert result.outcomes == {busy.pk: "processed"}
    assert Customer.objects.count() == 2
