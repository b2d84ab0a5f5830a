"""Target health against real HTTP servers: outages probed one request at a time, poison messages,
Retry-After holding the whole target (across worker processes), the retry window."""

import json
import random
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from canonical.changes import CustomerChange
from targets import health
from targets.models import DeliveryAttempt, OutboxMessage, TargetRuntime
from targets.services import outbox_deliver_due, outbox_enqueue, worker_id

from .support import make_customer, make_target, sandbox, start_worker, target_env, wait_until  # noqa: F401

SEED = 20260115


def enqueue_all(customers):
    with transaction.atomic():
        outbox_enqueue(changes=[CustomerChange(c.pk, c.version, "upsert", f"evt_{c.pk}") for c in customers])


def customers(n, prefix="c"):
    return [make_customer(email=f"{prefix}{i}@example.com") for i in range(n)]


def deliver(target, *, seconds, wait=True):
    return outbox_deliver_due(target_id=target.pk, owner=worker_id(), deadline=time.monotonic() + seconds,
                              wait_for_due=wait, rng=random.Random(SEED))


def runtime(target):
    return TargetRuntime.objects.get(target=target)


def starts(target):
    return [a.started_at for a in DeliveryAttempt.objects.filter(message__target=target).order_by("started_at")]


@pytest.mark.django_db
def test_a_target_refusing_connections_is_probed_with_growing_gaps_and_keeps_every_message(sandbox):
    # given twenty messages waiting for a crm that refuses connections (the seed's retry settings)
    print(f"seed={SEED}")
    target = make_target(sandbox, "crm", max_retries=5, backoff_seconds=0.5)
    waiting = customers(20)
    enqueue_all(waiting)
    sandbox.stop()
    # when a pump works on it for 9 s
    stats = deliver(target, seconds=9)
    # then the target is down since the fifth failure; after it, one probe at a time with growing gaps
    state = runtime(target)
    assert state.health == "down" and "connection error" in state.health_error
    times = starts(target)
    down_at = times[health.DOWN_AFTER_FAILURES - 1]
    assert state.down_since >= down_at
    probes = times[health.DOWN_AFTER_FAILURES:]
    gaps = [(b - a).total_seconds() for a, b in zip([down_at] + probes, probes)]
    print(f"requests {len(times)} in 9 s, probe gaps {[round(g, 2) for g in gaps]}")
    assert 2 <= len(probes) <= 4 and stats["probe_failed"] == len(probes)
    assert all(later >= earlier * 0.95 for earlier, later in zip(gaps, gaps[1:]))  # growing
    assert 0.4 <= gaps[0] <= 1.2
    # ... no message dead-lettered, and the attempts of the outage did not count
    assert not OutboxMessage.objects.exclude(status="pending").exists()
    assert max(OutboxMessage.objects.values_list("attempts", flat=True)) <= 3
    # when the crm is back
    sandbox.start()
    OutboxMessage.objects.update(next_attempt_at=timezone.now())  # not wait for the next probe's time
    TargetRuntime.objects.filter(target=target).update(next_probe_at=timezone.now())
    stats = deliver(target, seconds=20)
    # then one probe brings it up, and the backlog drains
    assert stats["probe_succeeded"] == 1 and stats["delivered"] == 20
    assert runtime(target).health == "up"
    assert OutboxMessage.objects.filter(status="delivered").count() == 20
    assert sorted(e["customer_id"] for e in sandbox.state.effects_for("crm")) == sorted(c.pk for c in waiting)


@pytest.mark.django_db(transaction=True)
def test_three_workers_send_one_probe_at_a_time_to_a_target_answering_503(sandbox, tmp_path):
    # given a cdp answering 503 slowly (300 ms) and three worker processes for thirty messages
    target = make_target(sandbox, "cdp", max_retries=5, backoff_seconds=0.5)
    sandbox.state.set_faults("cdp", force_status=503, latency_ms=300)
    enqueue_all(customers(30))
    workers = [start_worker(target_id=target.pk, seconds=8, seed=SEED + i, log_path=tmp_path / f"w{i}.log")
               for i in range(3)]
    for worker in workers:
        worker.wait(timeout=30)
    # then: after the fall no two requests overlap (each takes 300 ms), and their gaps grow
    requests = sorted(r["t"] for r in sandbox.state.requests_for("cdp"))
    down_since = runtime(target).down_since.timestamp()
    after = [t for t in requests if t > down_since + 0.35]  # requests in flight at the fall excluded
    gaps = [b - a for a, b in zip(after, after[1:])]
    print(f"{len(requests)} requests, {len(after)} after the fall, gaps {[round(g, 2) for g in gaps]}")
    assert len(requests) <= health.DOWN_AFTER_FAILURES + 2 + 6
    assert all(g >= 0.3 for g in gaps), gaps
    assert not OutboxMessage.objects.filter(status__in=["dead", "discarded"]).exists()
    # when it answers again, everything is delivered
    sandbox.state.clear_faults()
    OutboxMessage.objects.update(next_attempt_at=timezone.now())
    TargetRuntime.objects.filter(target=target).update(next_probe_at=timezone.now())
    deliver(target, seconds=20)
    assert OutboxMessage.objects.filter(status="delivered").count() == 30
    assert runtime(target).health == "up"


@pytest.mark.django_db
@pytest.mark.parametrize("fault", [{"status": 422}, {"status": 500}])
def test_a_poison_message_dead_letters_by_its_own_counts_while_the_others_are_delivered(sandbox, fault):
    # given six messages, one of which the cdp always refuses
    target = make_target(sandbox, "cdp", max_retries=3, backoff_seconds=0.05)
    batch = customers(6)
    poison = batch[2]
    sandbox.state.set_faults("cdp", poison={str(poison.pk): fault["status"]})
    enqueue_all(batch)
    # when
    stats = deliver(target, seconds=10)
    # then the poison message is dead (at once for 422, after 1 + max_retries tries for 500), the others delivered
    message = OutboxMessage.objects.get(customer=poison)
    assert (message.status, message.last_status) == ("dead", fault["status"])
    assert message.attempts == (1 if fault["status"] == 422 else 4)
    assert OutboxMessage.objects.filter(status="delivered").count() == 5
    assert runtime(target).health == "up" and not stats["probe_failed"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_holds_the_whole_target_across_workers_then_everything_is_delivered(sandbox, tmp_path, status):
    # given a crm that answers the first request with Retry-After: 2, and two workers for twenty messages
    target = make_target(sandbox, "crm", max_retries=5, backoff_seconds=0.5)
    sandbox.state.set_faults("crm", plan=[{"status": status, "retry_after": "2"}])
    enqueue_all(customers(20))
    workers = [start_worker(target_id=target.pk, seconds=10, seed=SEED + i, log_path=tmp_path / f"w{i}.log")
               for i in range(2)]
    wait_until(lambda: OutboxMessage.objects.filter(status="delivered").count() == 20, timeout=30,
               message="everything delivered after the hold")
    for worker in workers:
        worker.wait(timeout=30)
    # then: no request started within the 2 s beyond the one that may have been in flight already
    requests = sorted(sandbox.state.requests_for("crm"), key=lambda r: r["t"])
    held_at = next(r["t"] for r in requests if r["status"] == status)
    inside = [r for r in requests if held_at < r["t"] < held_at + 2.0]
    print(f"requests within the hold: {len(inside)}; after: {len([r for r in requests if r['t'] >= held_at + 2])}")
    assert len(inside) <= 1
    assert not OutboxMessage.objects.filter(status__in=["dead", "discarded"]).exists()
    assert all(m.attempts == 1 for m in OutboxMessage.objects.all())  # the hold cost nobody an attempt
    stats = [json.loads((tmp_path / f"w{i}.log").read_text().strip().splitlines()[-1]) for i in range(2)]
    assert sum(s.get("delivered", 0) for s in stats) == 20


@pytest.mark.django_db
def test_an_outage_longer_than_the_retry_window_dead_letters_with_the_reason(sandbox):
    # given a tiny window (1.8 s) and a crm refusing connections
    target = make_target(sandbox, "crm", max_retries=5, backoff_seconds=0.05, retry_window_hours=0.0005)
    enqueue_all(customers(6))
    sandbox.stop()
    # when a pump works for 3 s: down, still waiting
    deliver(target, seconds=1.0)
    assert runtime(target).health == "down"
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"pending"}
    # ... and on, past the window
    deliver(target, seconds=6)
    # then every message that had failed is dead (replayable), with the window named
    dead = list(OutboxMessage.objects.filter(status="dead"))
    assert dead and all("retry window of 0.0005 h" in m.last_error for m in dead)
    for message in dead:
        assert message.first_failed_at is not None
        assert message.updated_at - message.first_failed_at >= timedelta(seconds=1.8)
    # a message first tried by the last probes has its own window still to run
    last_probe = starts(target)[-1]
    for message in OutboxMessage.objects.filter(status="pending"):
        assert message.first_failed_at is None or message.first_failed_at > last_probe - timedelta(seconds=1.8)
