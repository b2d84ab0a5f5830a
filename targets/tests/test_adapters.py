"""Adapters against the in-process sandbox: exact requests, bodies, headers and each auth kind."""

import json
import random
import time

import pytest
from django.db import transaction
from standardwebhooks.webhooks import Webhook

from canonical.changes import CustomerChange
from targets.adapters import adapter_for
from targets.delivery import idempotency_key
from targets.models import DeliveredState, DeliveryAttempt, OutboxMessage, TargetFieldMapping
from targets.services import outbox_deliver_due, outbox_enqueue, worker_id

from .support import TEST_SECRETS, make_customer, make_target, sandbox, target_env  # noqa: F401

pytestmark = pytest.mark.django_db


def enqueue(customer, *, operation="upsert", correlation_id="evt_123"):
    with transaction.atomic():
        return outbox_enqueue(changes=[CustomerChange(customer.pk, customer.version, operation, correlation_id)])


def deliver(target, seconds=5.0):
    return outbox_deliver_due(target_id=target.pk, owner=worker_id(), deadline=time.monotonic() + seconds,
                              wait_for_due=False, rng=random.Random(7))


def test_cdp_upsert_exact_request(sandbox):
    target = make_target(sandbox, "cdp")
    customer = make_customer(version=3, external_ids={"shop": "9981", "crm": "C-17"})
    enqueue(customer)

    deliver(target)

    [request] = sandbox.state.requests_for("cdp")
    assert (request["method"], request["path"]) == ("POST", "/cdp/customers/upsert")
    assert request["auth"] == "bearer" and request["auth_ok"] is True
    assert request["content_type"] == "application/json"
    assert request["idempotency_key"] == idempotency_key(target_name="cdp", customer_id=customer.pk, version=3,
                                                         operation="upsert")
    assert request["correlation_id"] == "evt_123"
    assert request["body"] == {
        "id": customer.pk,
        "external_ids": {"crm_id": "C-17", "shop_id": "9981"},
        "email": "max@example.com",
        "phone": "+4915123456789",
        "profile": {"first_name": "Max", "last_name": "Mustermann"},
        "consent": {"marketing_opt_in": True},
        "meta": {"source": "shop", "updated_at": request["body"]["meta"]["updated_at"], "version": 3},
    }
    assert request["body"]["meta"]["updated_at"].endswith("Z")
    message = OutboxMessage.objects.get(target=target)
    assert message.status == OutboxMessage.Status.DELIVERED
    state = DeliveredState.objects.get(target=target, customer=customer)
    assert (state.version, state.operation, state.body) == (3, "upsert", request["body"])


def test_crm_put_and_delete_exact_requests(sandbox):
    target = make_target(sandbox, "crm")
    customer = make_customer(version=2, external_ids={"shop": "9981"})
    enqueue(customer)
    deliver(target)

    from django.utils import timezone
    customer.deleted_at = timezone.now()
    customer.version = 3
    customer.save()
    enqueue(customer, operation="delete", correlation_id="evt_del")
    deliver(target)

    put, delete = sandbox.state.requests_for("crm")
    assert (put["method"], put["path"], put["auth"], put["auth_ok"]) == ("PUT", "/crm/v1/contacts", "apikey", True)
    assert put["body"] == {
        "email": "max@example.com", "phone": "+4915123456789", "firstName": "Max", "lastName": "Mustermann",
        "externalIds": {"shop_id": "9981", "custsync_id": str(customer.pk)},
    }
    assert (delete["method"], delete["path"]) == ("DELETE", f"/crm/v1/contacts/{customer.pk}")
    assert delete["idempotency_key"] == idempotency_key(target_name="crm", customer_id=customer.pk, version=3,
                                                        operation="delete")
    assert delete["correlation_id"] == "evt_del"
    assert sandbox.state.record("crm", customer.pk) is None
    assert sandbox.state.versions_for("crm", customer.pk) == [2, 3]


def test_idempotency_key_is_deterministic_per_target_customer_version_operation():
    key = idempotency_key(target_name="cdp", customer_id=1, version=2, operation="upsert")
    assert key == idempotency_key(target_name="cdp", customer_id=1, version=2, operation="upsert")
    others = {
        idempotency_key(target_name="crm", customer_id=1, version=2, operation="upsert"),
        idempotency_key(target_name="cdp", customer_id=2, version=2, operation="upsert"),
        idempotency_key(target_name="cdp", customer_id=1, version=3, operation="upsert"),
        idempotency_key(target_name="cdp", customer_id=1, version=2, operation="delete"),
    }
    assert key not in others and len(others) == 4


def test_steward_added_mapping_reaches_the_body(sandbox):
    target = make_target(sandbox, "crm")
    TargetFieldMapping.objects.create(target=target, canonical_field="locale", target_path="language", order=999)
    TargetFieldMapping.objects.filter(target=target, canonical_field="phone").update(enabled=False)
    customer = make_customer(locale="de-DE")
    enqueue(customer)
    deliver(target)

    [request] = sandbox.state.requests_for("crm")
    assert request["body"]["language"] == "de-DE"
    assert "phone" not in request["body"]


def test_webhook_events_are_standard_webhooks_signed(sandbox):
    target = make_target(sandbox, "webhook", name="n8n")
    customer = make_customer(version=4, external_ids={"shop": "9981"})
    enqueue(customer)
    deliver(target)
    from django.utils import timezone
    customer.deleted_at = timezone.now()
    customer.version = 5
    customer.save()
    enqueue(customer, operation="delete")
    deliver(target)

    events = [e["event"] for e in sandbox.state.webhook_events]
    assert [e["type"] for e in events] == ["customer.changed", "customer.deleted"]
    assert events[0]["data"]["email"] == "max@example.com"
    assert events[0]["data"]["external_ids"] == {"shop_id": "9981"}
    assert events[1]["data"] == {"id": customer.pk, "version": 5, "deleted": True}
    # Verify a signature independently with the library, over the exact bytes an adapter sends.
    adapter = adapter_for(target)
    call = adapter.prepare(snapshot={"id": 1, "version": 1, "updated_at": "2026-01-01T00:00:00Z"}, operation="upsert")
    body = json.dumps(call.body, separators=(",", ":"), sort_keys=True).encode()
    headers = {}
    adapter.auth.apply(headers, body=body, message_id="cs_abc")
    assert Webhook(TEST_SECRETS["N8N_SECRET"]).verify(body, headers)["type"] == "customer.changed"
    assert headers["webhook-id"] == "cs_abc"
    requests_ = sandbox.state.requests_for("webhook")
    assert all(r["auth_ok"] for r in requests_)
    assert requests_[0]["idempotency_key"] == idempotency_key(target_name="n8n", customer_id=customer.pk, version=4,
                                                              operation="upsert")


def test_wrong_bearer_token_is_a_non_retryable_401(sandbox, monkeypatch):
    monkeypatch.setenv("CDP_TOKEN", "not-the-token")
    target = make_target(sandbox, "cdp")
    enqueue(make_customer())
    deliver(target)

    message = OutboxMessage.objects.get(target=target)
    assert (message.status, message.last_status, message.attempts) == ("dead", 401, 1)
    assert "not-the-token" not in message.last_error
    assert sandbox.state.requests_for("cdp")[0]["auth_ok"] is False


def test_missing_secret_variable_goes_dead_naming_the_variable(sandbox, monkeypatch):
    monkeypatch.delenv("CRM_API_KEY")
    target = make_target(sandbox, "crm")
    enqueue(make_customer())
    deliver(target)

    message = OutboxMessage.objects.get(target=target)
    assert message.status == "dead" and "CRM_API_KEY" in message.last_error
    assert sandbox.state.requests_for("crm") == []


@pytest.mark.parametrize("kind", ["cdp", "crm"])
def test_oauth2_token_is_cached_and_refreshed_once_on_401(sandbox, kind):
    target = make_target(sandbox, kind, auth="oauth2")
    first, second, third = make_customer(), make_customer(email="b@example.com"), make_customer(email="c@example.com")
    enqueue(first)
    enqueue(second)
    deliver(target)
    assert sandbox.state.tokens_issued == 1  # cached: one token for two requests
    assert [r["auth"] for r in sandbox.state.requests_for(kind)] == ["oauth2", "oauth2"]

    with sandbox.state.lock:
        sandbox.state.oauth_tokens.clear()  # the target revokes the token
    enqueue(third)
    deliver(target)

    assert sandbox.state.tokens_issued == 2
    statuses = [r["status"] for r in sandbox.state.requests_for(kind)]
    assert statuses[2] == 401 and statuses[3] in (200, 201) and len(statuses) == 4
    assert OutboxMessage.objects.filter(target=target, status="delivered").count() == 3
    token_requests = sandbox.state.requests_for("oauth")
    assert len(token_requests) == 2 and all(r["auth_ok"] for r in token_requests)


def test_oauth2_refresh_happens_only_once(sandbox):
    target = make_target(sandbox, "cdp", auth="oauth2")
    sandbox.state.set_faults("cdp", force_status=401)
    enqueue(make_customer())
    deliver(target)

    assert [r["status"] for r in sandbox.state.requests_for("cdp")] == [401, 401]
    assert sandbox.state.tokens_issued == 2
    assert OutboxMessage.objects.get(target=target).status == "dead"


def test_oauth2_bad_client_secret_is_dead_without_calling_the_api(sandbox, monkeypatch):
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "wrong")
    target = make_target(sandbox, "crm", auth="oauth2")
    enqueue(make_customer())
    deliver(target)

    message = OutboxMessage.objects.get(target=target)
    assert (message.status, message.last_status) == ("dead", 401)
    assert "token endpoint" in message.last_error and "wrong" not in message.last_error
    assert sandbox.state.requests_for("crm") == []
    assert DeliveryAttempt.objects.get(message=message).status_code == 401


@pytest.mark.parametrize("kind,page_size", [("cdp", 7), ("crm", 7), ("cdp", 100)])
def test_iter_records_pages_through_the_listing_and_maps_back(sandbox, kind, page_size):
    target = make_target(sandbox, kind)
    customers = [make_customer(email=f"p{i}@example.com", external_ids={"shop": str(1000 + i)}) for i in range(23)]
    for customer in customers:
        enqueue(customer)
    deliver(target, seconds=20)
    assert OutboxMessage.objects.filter(status="delivered").count() == 23

    adapter = adapter_for(target)
    records = list(adapter.iter_records(page_size=page_size))
    listed = [r for r in sandbox.state.requests_for(kind) if r["method"] == "GET"]

    assert len(records) == 23
    assert len(listed) == -(-23 // page_size)
    canonical = {c["id"]: c for c in map(adapter.record_to_canonical, records)}
    assert set(canonical) == {c.pk for c in customers}
    sample = canonical[customers[5].pk]
    assert sample["email"] == "p5@example.com"
    assert sample["external_ids"] == {"shop": "1005"}
    assert sample["first_name"] == "Max"
