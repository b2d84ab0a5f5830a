"""Real HTTP against a live server: the sample command, and concurrent duplicate deliveries."""

import random
import threading
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command

from webhooks.models import InboxEvent, Source

from .conftest import body_of, hmac_headers, sample_event


@pytest.fixture
def live_sources(transactional_db, secrets_env, monkeypatch):
    # Keep the processing task off the queue table: only the gateway is under test here.
    monkeypatch.setattr("django_q.tasks.async_task", lambda *args, **kwargs: None)
    shop = Source.objects.create(name="shop", secret_refs=["${WEBHOOK_SECRET}"])
    support = Source.objects.create(
        name="support", signature_scheme="standard-webhooks",
        secret_refs=["${SUPPORT_SECRET_OLD}", "${SUPPORT_SECRET}"], schema_versions=[1, 2],
    )
    return shop, support


def send(url, *args):
    out = StringIO()
    call_command("send_sample_webhook", "--url", url, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.e2e
def test_send_sample_webhook_reaches_the_inbox(live_server, live_sources):
    url = f"{live_server.url}/webhooks/customer"
    out = send(url, "--event-id", "evt_123")
    assert out.startswith("202 ") and '"status": "accepted"' in out
    assert "duplicate_ignored" in send(url, "--event-id", "evt_123")
    out = send(url, "--source", "support", "--no-event-id")  # standard-webhooks, current (last) secret
    assert out.startswith("202 ") and "sha256:" in out
    event = InboxEvent.objects.get(source__name="support")
    assert event.payload["data"]["support_id"] == 9981 and event.event_id_provided is False
    assert InboxEvent.objects.count() == 2


@pytest.mark.e2e
def test_send_sample_webhook_errors_are_clear(live_server, live_sources, monkeypatch, tmp_path):
    url = f"{live_server.url}/webhooks/customer"
    with pytest.raises(CommandError, match="unknown source 'nope'"):
        send(url, "--source", "nope")
    monkeypatch.delenv("WEBHOOK_SECRET")
    with pytest.raises(CommandError, match="WEBHOOK_SECRET is not set"):
        send(url)
    monkeypatch.setenv("WEBHOOK_SECRET", "x")
    bad = tmp_path / "bad.json"
    bad.write_text('{"source": "shop"}')
    with pytest.raises(CommandError, match="answered 400"):
        send(url, "--file", str(bad))
    with pytest.raises(CommandError, match="could not reach"):
        send("http://127.0.0.1:9/webhooks/customer")


@pytest.mark.postgres
@pytest.mark.e2e
def test_concurrent_deliveries_of_one_event_store_one_row(live_server, live_sources):
    """N threads POST the same event at the same moment: one accepted, the rest duplicate_ignored."""
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    rng = random.Random(seed)
    url = f"{live_server.url}/webhooks/customer"
    threads_count = 12
    for round_number in range(5):
        event = sample_event(event_id=f"evt_race_{round_number}_{rng.randrange(10**9)}")
        if round_number % 2:
            del event["event_id"]  # the computed key races just the same
            event["data"]["first_name"] = f"Max{rng.randrange(10**9)}"
        body = body_of(event)
        barrier = threading.Barrier(threads_count)
        results: list = [None] * threads_count

        def deliver(i):
            session = requests.Session()
            headers = {**hmac_headers(body), "Content-Type": "application/json"}
            barrier.wait(timeout=30)
            results[i] = session.post(url, data=body, headers=headers, timeout=30)

        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(threads_count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert all(r is not None for r in results), "a delivery did not finish"
        statuses = sorted(r.json()["status"] for r in results)
        assert [r.status_code for r in results] == [202] * threads_count, [r.text for r in results]
        assert statuses.count("accepted") == 1, statuses
        assert statuses.count("duplicate_ignored") == threads_count - 1
        assert len({r.json()["event_id"] for r in results}) == 1
    assert InboxEvent.objects.count() == 5
