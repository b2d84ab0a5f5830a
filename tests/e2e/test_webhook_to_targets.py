"""The whole path with real parts: signed webhook -> gateway -> inbox -> django-q2 worker
-> golden record -> outbox -> sandbox CDP and CRM over HTTP."""

import pytest
from django.core.management import call_command

from canonical.models import Customer
from targets.tests.support import make_target, qcluster, sandbox, target_env, wait_until  # noqa: F401
from tests.factories import source_create
from webhooks.models import InboxEvent

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_seed_sample_reaches_cdp_and_crm(live_server, sandbox, qcluster, monkeypatch, capsys):  # noqa: F811
    # given: the shop source, the sandbox cdp and crm, and a running worker
    monkeypatch.setenv("WEBHOOK_SECRET", "e2e-webhook-secret-0001")
    source_create("shop")
    make_target(sandbox, "cdp")
    make_target(sandbox, "crm")
    qcluster()
    # when: a newcomer sends the seed's sample event with the documented command
    call_command("send_sample_webhook", url=f"{live_server.url}/webhooks/customer", source="shop", event_id="evt_123")
    assert "202" in capsys.readouterr().out
    # then: the worker processes it and both targets hold the golden state with the right headers
    event = wait_until(lambda: InboxEvent.objects.filter(event_id="evt_123", status="processed").first(),
                       timeout=30, message="inbox event processed")
    customer = Customer.objects.get(pk=event.customer_id)
    cdp = wait_until(lambda: sandbox.state.record("cdp", customer.pk), timeout=30, message="cdp upsert")
    crm = wait_until(lambda: sandbox.state.record("crm", customer.pk), timeout=30, message="crm upsert")
    assert cdp["email"] == "person@example.com" and cdp["phone"] == "+49151234567"
    assert cdp["external_ids"]["shop_id"] == "9981"
    assert cdp["profile"] == {"first_name": "Max", "last_name": "Mustermann"}
    assert cdp["meta"]["version"] == customer.version
    assert crm["firstName"] == "Max" and crm["externalIds"]["custsync_id"] == str(customer.pk)
    for system in ("cdp", "crm"):
        requests = [r for r in sandbox.state.requests_for(system) if r["method"] != "GET"]
        assert requests and all(r["correlation_id"] == "evt_123" for r in requests)
        assert all(r["idempotency_key"] for r in requests)
        assert len(sandbox.state.effects_for(system)) == 1
