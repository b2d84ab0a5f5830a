"""Concurrent workers handling events of the same person create one customer (PostgreSQL)."""

import threading

import pytest
from django.db import connection, transaction

from canonical.models import Customer, ExternalId
from canonical.services import event_apply

from .factories import make_event

WORKERS = 8


def _run_concurrently(events):
    barrier = threading.Barrier(len(events))
    errors = []

    def work(event):
        try:
            barrier.wait(timeout=10)
            with transaction.atomic():  # each thread: its own connection and transaction
                event_apply(event=event)
        except Exception as error:  # noqa: BLE001 - reported by the test below
            errors.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert errors == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_concurrent_events_for_one_person_create_one_customer(round_):
    events = []
    for index in range(WORKERS):
        data = {"email": "same@example.com", "first_name": f"N{index}"}
        if index % 2:
            data["shop_id"] = 1
        else:
            data["phone"] = "+4915123456789"
        events.append(make_event(data, source="shop", minutes=index, event_id=f"evt_{round_}_{index}"))

    _run_concurrently(events)

    active = Customer.objects.filter(deleted_at__isnull=True, merged_into__isnull=True)
    assert active.count() == 1
    customer = active.get()
    assert customer.first_name == f"N{WORKERS - 1}"  # latest occurred_at of the one source
    assert ExternalId.objects.filter(system="shop", value="1", customer=customer).exists()
    assert customer.version <= WORKERS


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_linking_events_merge_without_losing_changes():
    # given two records of the same person, by shop id and by crm id
    with transaction.atomic():
        event_apply(event=make_event({"shop_id": 1, "email": "p@example.com"}, source="shop", event_id="a"))
        event_apply(event=make_event({"crm_id": "C-1", "phone": "+4915123456789"}, source="crm", event_id="b"))
    # when several workers at once see events linking them
    _run_concurrently([
        make_event({"shop_id": 1, "crm_id": "C-1", "last_name": f"L{i}"}, source="crm", minutes=i, event_id=f"l{i}")
        for i in range(WORKERS)
    ])
    # then one survivor holds both ids and the latest crm value
    active = Customer.objects.filter(deleted_at__isnull=True, merged_into__isnull=True)
    assert active.count() == 1
    assert set(active.get().external_ids.values_list("system", flat=True)) == {"shop", "crm"}
    assert active.get().last_name == f"L{WORKERS - 1}"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_applying_an_event_locks_the_customer_for_no_key_update_so_deliveries_can_reference_it():
    # a delivery inserting a row that references the customer (FK check: FOR KEY SHARE) must not wait on
    # inbox processing: with FOR UPDATE the two deadlocked in the scale-out test (lock order inversion)
    from django.test.utils import CaptureQueriesContext

    with transaction.atomic():
        event_apply(event=make_event({"shop_id": 1, "email": "a@example.com"}, event_id="e1"))
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        event_apply(event=make_event({"shop_id": 1, "first_name": "Maxi"}, event_id="e2", minutes=1))
    locks = [q["sql"] for q in queries.captured_queries if '"canonical_customer"' in q["sql"] and " FOR " in q["sql"]]
    assert locks and all("FOR NO KEY UPDATE" in sql for sql in locks), locks
