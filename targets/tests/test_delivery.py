"""Delivery: retries, Retry-After, DLQ, replay, coalescing, ordering, leases, enqueue and kicks."""

import random
import socket
import time
from datetime import timedelta
from email.utils import formatdate

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ

from canonical.changes import CustomerChange
from targets.adapters import adapter_for
from targets.delivery import MAX_RETRY_AFTER_SECONDS, parse_retry_after, retry_delay
from targets.models import DeliveredState, DeliveryAttempt, OutboxMessage
from targets.services import (
    dead_letter_replay, outbox_deliver_due, outbox_enqueue, outbox_message_claim, outbox_message_deliver, outbox_sweep,
    worker_id,
)

from .support import make_customer, make_target, sandbox, target_env, wait_until  # noqa: F401

pytestmark = pytest.mark.django_db

SEED = 20260114


def enqueue(customer, *, version=None, operation="upsert", correlation_id="evt_1"):
    with transaction.atomic():
        return outbox_enqueue(changes=[CustomerChange(customer.pk, version or customer.version, operation, correlation_id)])


def deliver(target, *, seconds=5.0, wait=False):
    return outbox_deliver_due(target_id=target.pk, owner=worker_id(), deadline=time.monotonic() + seconds,
                              wait_for_due=wait, rng=random.Random(SEED))


def message_of(target):
    return OutboxMessage.objects.get(target=target)


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_retryable_status_is_retried_with_backoff_then_delivered(sandbox, status):
    target = make_target(sandbox, "cdp", backoff_seconds=0.4)
    sandbox.state.set_faults("cdp", plan=[{"status": status}])
    customer = make_customer()
    enqueue(customer)

    before = timezone.now()
    deliver(target)
    message = message_of(target)
    assert (message.status, message.last_status, message.attempts) == ("pending", status, 1)
    assert before <= message.next_attempt_at <= timezone.now() + timedelta(seconds=0.4)

    deliver(target, wait=True)
    message.refresh_from_db()
    assert message.status == "delivered"
    assert [a.outcome for a in DeliveryAttempt.objects.order_by("id")] == ["retry", "delivered"]
    assert [a.status_code for a in DeliveryAttempt.objects.order_by("id")] == [status, 201]
    assert len(sandbox.state.effects_for("cdp")) == 1


def test_timeout_is_retried_and_the_late_effect_is_not_duplicated(sandbox):
    target = make_target(sandbox, "cdp", timeout_seconds=0.3)
    sandbox.state.set_faults("cdp", plan=[{"hang": 1.0}])
    customer = make_customer()
    enqueue(customer)

    deliver(target)
    message = message_of(target)
    assert message.status == "pending" and "timeout" in message.last_error and message.last_status is None
    # a timed-out request may still land: the retry waits until it cannot overtake it (lease window)
    assert (message.next_attempt_at - message.updated_at).total_seconds() >= 5.0

    deliver(target, seconds=10, wait=True)
    message.refresh_from_db()
    assert message.status == "delivered"
    # The hung request finishes later and applies with the same key: still one effect.
    wait_until(lambda: all(r["status"] is not None for r in sandbox.state.requests_for("cdp")), timeout=5)
    assert len(sandbox.state.effects_for("cdp")) == 1
    assert sandbox.state.versions_for("cdp", customer.pk) == [1]


def test_connection_refused_is_retried(sandbox):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    target = make_target(sandbox, "crm", base_url=f"http://127.0.0.1:{closed_port}/crm")
    enqueue(make_customer())

    deliver(target)

    message = message_of(target)
    assert (message.status, message.attempts) == ("pending", 1)
    assert "connection error" in message.last_error
    assert DeliveryAttempt.objects.get().outcome == "retry"


def test_dropped_connection_is_retried(sandbox):
    target = make_target(sandbox, "cdp")
    sandbox.state.set_faults("cdp", plan=[{"close": True}])
    enqueue(make_customer())
    deliver(target)
    assert message_of(target).status == "pending"
    deliver(target, wait=True)
    assert message_of(target).status == "delivered"


def test_retry_after_seconds_is_honoured(sandbox):
    target = make_target(sandbox, "cdp", backoff_seconds=0.1)
    sandbox.state.set_faults("cdp", plan=[{"status": 429, "retry_after": "7"}])
    enqueue(make_customer())

    before = timezone.now()
    deliver(target)

    message = message_of(target)
    assert message.status == "pending"
    assert before + timedelta(seconds=7) <= message.next_attempt_at <= timezone.now() + timedelta(seconds=7)


def test_retry_after_http_date_is_honoured(sandbox):
    target = make_target(sandbox, "crm", backoff_seconds=0.1)
    sandbox.state.set_faults("crm", plan=[{"status": 503, "retry_after": formatdate(time.time() + 30, usegmt=True)}])
    enqueue(make_customer())

    deliver(target)

    wait = (message_of(target).next_attempt_at - timezone.now()).total_seconds()
    assert 27 <= wait <= 31


def test_retry_after_parsing_and_cap():
    assert parse_retry_after("120") == 120
    assert parse_retry_after("9999999") == MAX_RETRY_AFTER_SECONDS
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after(formatdate(time.time() - 60, usegmt=True)) == 0


def test_backoff_is_exponential_full_jitter():
    print(f"seed={SEED}")
    rng = random.Random(SEED)
    for attempts in range(1, 8):
        draws = [retry_delay(attempts=attempts, backoff_seconds=0.5, rng=rng) for _ in range(300)]
        ceiling = 0.5 * 2 ** (attempts - 1)
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > 0.8 * ceiling  # the whole range is used: full jitter
        assert min(draws) < 0.2 * ceiling
    assert retry_delay(attempts=40, backoff_seconds=0.5, rng=rng) <= 300


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_non_retryable_4xx_goes_dead_with_status_and_body_kept(sandbox, status):
    target = make_target(sandbox, "cdp")
    sandbox.state.set_faults("cdp", plan=[{"status": status}])
    enqueue(make_customer())

    deliver(target)

    message = message_of(target)
    assert (message.status, message.last_status, message.attempts) == ("dead", status, 1)
    assert "injected fault" in message.last_error


def test_exhausted_retries_go_dead(sandbox):
    target = make_target(sandbox, "crm", max_retries=2, backoff_seconds=0.02)
    sandbox.state.set_faults("crm", force_status=503)
    enqueue(make_customer())

    deliver(target, wait=True)

    message = message_of(target)
    assert (message.status, message.attempts, message.last_status) == ("dead", 3, 503)
    assert [a.outcome for a in DeliveryAttempt.objects.order_by("id")] == ["retry", "retry", "dead"]
    assert len(sandbox.state.requests_for("crm")) == 3


def test_without_dead_letter_queue_exhausted_messages_are_discarded(sandbox):
    target = make_target(sandbox, "crm", max_retries=0, dead_letter_queue=False)
    sandbox.state.set_faults("crm", force_status=500)
    enqueue(make_customer())
    deliver(target)
    message = message_of(target)
    assert (message.status, message.last_status) == ("discarded", 500)


def test_replay_from_the_dlq_delivers_and_does_not_duplicate(sandbox):
    # given: the target applied the request, but the answer never arrived (timeout) and retries ran out
    target = make_target(sandbox, "cdp", timeout_seconds=0.3, max_retries=0)
    sandbox.state.set_faults("cdp", plan=[{"hang": 0.8}])
    customer = make_customer()
    enqueue(customer)
    deliver(target)
    assert message_of(target).status == "dead"
    wait_until(lambda: len(sandbox.state.effects_for("cdp")) == 1, timeout=5, message="the late effect")

    # when
    call_command("replay_dead_letters", "--target", "cdp", stdout=open("/dev/null", "w"))
    deliver(target)

    # then: delivered, the target answered from its idempotency cache, one effect
    message = message_of(target)
    assert message.status == "delivered"
    assert len(sandbox.state.effects_for("cdp")) == 1
    assert sandbox.state.requests_for("cdp")[-1]["replayed"] is True


def test_replay_of_an_old_dead_letter_after_a_newer_pending_is_superseded(sandbox):
    target = make_target(sandbox, "cdp")
    sandbox.state.set_faults("cdp", plan=[{"status": 422}])
    customer = make_customer(version=1)
    enqueue(customer)
    deliver(target)
    customer.version = 2
    customer.save()
    enqueue(customer)

    counts = dead_letter_replay(target_name="cdp")
    deliver(target)

    assert counts == {"replayed": 0, "superseded": 1}
    assert sorted(OutboxMessage.objects.values_list("status", flat=True)) == ["delivered", "superseded"]
    assert sandbox.state.versions_for("cdp", customer.pk) == [2]


def test_burst_of_changes_coalesces_into_one_delivery_of_the_newest_version(sandbox):
    cdp, crm = make_target(sandbox, "cdp"), make_target(sandbox, "crm")
    customer = make_customer(version=0)
    for version in range(1, 21):  # twenty separate golden transactions before any delivery
        customer.version = version
        customer.first_name = f"Max{version}"
        customer.save()
        enqueue(customer, correlation_id=f"evt_{version}")
    with transaction.atomic():  # and a burst inside one transaction, out of order
        written = outbox_enqueue(changes=[CustomerChange(customer.pk, v, "upsert", f"x{v}") for v in (18, 20, 19)])

    deliver(cdp)
    deliver(crm)

    assert written == 0  # nothing newer than what was pending
    assert OutboxMessage.objects.count() == 2
    for system in ("cdp", "crm"):
        [request] = sandbox.state.requests_for(system)
        assert request["version_header"] == "20" and request["correlation_id"] == "evt_20"
    assert sandbox.state.record("cdp", customer.pk)["profile"]["first_name"] == "Max20"


def test_delete_supersedes_a_pending_upsert(sandbox):
    target = make_target(sandbox, "cdp")
    customer = make_customer(version=1)
    enqueue(customer)
    deliver(target)
    customer.version, customer.first_name = 2, "Moritz"
    customer.save()
    enqueue(customer)
    customer.version, customer.deleted_at = 3, timezone.now()
    customer.save()
    enqueue(customer, operation="delete")
    enqueue(customer, version=2, operation="upsert")  # a late, older upsert never resurrects

    deliver(target)

    methods = [(r["method"], r["version"]) for r in sandbox.state.requests_for("cdp")]
    assert methods == [("POST", 1), ("DELETE", 3)]
    assert sandbox.state.record("cdp", customer.pk) is None


def test_delete_of_a_record_the_target_never_had_counts_as_delivered(sandbox):
    target = make_target(sandbox, "crm")
    customer = make_customer(version=2, deleted_at=timezone.now())
    enqueue(customer, operation="delete")
    deliver(target)
    assert sandbox.state.requests_for("crm")[0]["status"] == 404
    assert message_of(target).status == "delivered"


def test_ordering_never_sends_an_older_version_after_a_newer(sandbox):
    print(f"seed={SEED}")
    rng = random.Random(SEED)
    target = make_target(sandbox, "cdp", backoff_seconds=0.01)
    sandbox.state.set_faults("cdp", fail_rate=0.3, fail_statuses=[503, 429])
    customers = [make_customer(email=f"o{i}@example.com", version=1) for i in range(4)]
    for customer in customers:
        enqueue(customer)
    for step in range(60):
        customer = rng.choice(customers)
        customer.version += 1
        customer.save()
        # changes can also reach the outbox late and out of order
        enqueue(customer, version=customer.version - rng.choice([0, 0, 1]))
        if rng.random() < 0.4:
            deliver(target, seconds=0.5)
    # a stale replay of everything dead must not move anything backwards either
    dead_letter_replay()
    sandbox.state.clear_faults()
    deliver(target, seconds=10, wait=True)

    for customer in customers:
        versions = sandbox.state.versions_for("cdp", customer.pk)
        assert versions == sorted(set(versions)), versions
        assert versions[-1] == customer.version
        assert sandbox.state.record("cdp", customer.pk)["meta"]["version"] == customer.version


def test_already_delivered_version_is_superseded_without_a_request(sandbox):
    target = make_target(sandbox, "cdp")
    customer = make_customer(version=5)
    enqueue(customer)
    deliver(target)
    OutboxMessage.objects.create(target=target, customer=customer, version=5, next_attempt_at=timezone.now())

    deliver(target)

    assert len(sandbox.state.requests_for("cdp")) == 1
    assert OutboxMessage.objects.filter(status="superseded").count() == 1
    assert DeliveredState.objects.get().version == 5


def test_resend_forces_a_delivered_version_again(sandbox):
    target = make_target(sandbox, "cdp")
    customer = make_customer(version=5)
    enqueue(customer)
    deliver(target)
    with sandbox.state.lock:
        sandbox.state.stores["cdp"].clear()
        sandbox.state.idempotency.clear()  # the target lost its data
    with transaction.atomic():
        outbox_enqueue(changes=[CustomerChange(customer.pk, 5, "upsert", "reconcile:1")], resend=True)
    deliver(target)
    assert sandbox.state.record("cdp", customer.pk)["meta"]["version"] == 5


def test_lease_fence_a_worker_whose_lease_expired_cannot_overwrite(sandbox):
    target = make_target(sandbox, "cdp")
    customer = make_customer()
    enqueue(customer)
    adapter = adapter_for(target)
    first = outbox_message_claim(target=target, owner="worker-a")
    OutboxMessage.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    second = outbox_message_claim(target=target, owner="worker-b")
    assert second.pk == first.pk and second.attempts == 2

    assert outbox_message_deliver(message=first, owner="worker-a", adapter=adapter) == "lost"
    assert message_of(target).status == "in_flight" and message_of(target).lease_owner == "worker-b"
    # worker-b sees the target already acknowledged this version: no second request
    assert outbox_message_deliver(message=second, owner="worker-b", adapter=adapter) == "superseded"
    assert message_of(target).status == "superseded"
    assert len(sandbox.state.requests_for("cdp")) == 1


def test_change_coalesced_while_in_flight_is_sent(sandbox):
    target = make_target(sandbox, "cdp")
    customer = make_customer(version=1)
    enqueue(customer)
    claimed = outbox_message_claim(target=target, owner="w")
    customer.version, customer.first_name = 2, "Moritz"
    customer.save()
    enqueue(customer)  # coalesces into the in-flight row
    outbox_message_deliver(message=claimed, owner="w", adapter=adapter_for(target))
    deliver(target)

    assert sandbox.state.versions_for("cdp", customer.pk) == [2]
    assert message_of(target).status == "delivered"


def test_enqueue_writes_for_enabled_targets_only_and_kicks_once_on_commit(sandbox, django_capture_on_commit_callbacks):
    make_target(sandbox, "cdp")
    make_target(sandbox, "crm")
    make_target(sandbox, "webhook", name="off", enabled=False)
    a, b = make_customer(), make_customer(email="b@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            written = outbox_enqueue(changes=[CustomerChange(a.pk, 1, "upsert", "e1"), CustomerChange(b.pk, 1, "upsert", "e1")])
            assert OrmQ.objects.count() == 0  # nothing kicked before commit
    assert written == 4
    assert sorted(OutboxMessage.objects.values_list("target__name", flat=True)) == ["cdp", "cdp", "crm", "crm"]
    assert OrmQ.objects.count() == 2  # one pump per target
    with django_capture_on_commit_callbacks(execute=True):
        enqueue(a, version=2)
    assert OrmQ.objects.count() == 2  # a pump is already requested: no pile-up


def test_enqueue_rolls_back_with_the_caller(sandbox):
    make_target(sandbox, "cdp")
    customer = make_customer()
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            outbox_enqueue(changes=[CustomerChange(customer.pk, 1, "upsert", "e")])
            raise RuntimeError("golden change failed")
    assert OutboxMessage.objects.count() == 0


def test_sweep_kicks_each_target_once_however_many_messages_are_due(sandbox):
    # given two targets with many due messages (found by the scale-out test: one "target" per message)
    make_target(sandbox, "cdp")
    make_target(sandbox, "crm")
    for index in range(5):
        enqueue(make_customer(email=f"s{index}@example.com"))
    assert OutboxMessage.objects.count() == 10
    # when
    result = outbox_sweep()
    # then: two targets, one pump task each
    assert result["targets"] == 2
    assert result["kicked"] <= 2


def test_a_newer_version_does_not_overtake_a_timed_out_request_that_lands_late(sandbox):
    # given a request for version 1 that the target holds 1.0 s before applying it; we give up after 0.3 s
    # (found by the chaos suite's reasoning: a retry sent the newer version 2 first, then 1 landed)
    target = make_target(sandbox, "cdp", timeout_seconds=0.3, backoff_seconds=0.01)
    sandbox.state.set_faults("cdp", plan=[{"hang": 1.0}])
    customer = make_customer(version=1)
    enqueue(customer)
    deliver(target)
    assert message_of(target).status == "pending"
    # when the golden record moves on before the late request has landed, and delivery goes on at once
    customer.version = 2
    customer.save()
    enqueue(customer)
    deliver(target, seconds=10, wait=True)
    # then the late version 1 landed before version 2: the target ends on 2 and never went back
    wait_until(lambda: all(r["status"] is not None for r in sandbox.state.requests_for("cdp")), timeout=5)
    assert sandbox.state.versions_for("cdp", customer.pk) == [1, 2]
    assert sandbox.state.record("cdp", customer.pk)["meta"]["version"] == 2


def test_without_a_rate_limit_one_claim_takes_several_messages_with_leases_that_outlast_the_sends(sandbox):
    from targets import services

    target = make_target(sandbox, "cdp")
    customers = [make_customer(email=f"c{i}@example.com") for i in range(3)]
    for customer in customers:
        enqueue(customer)
    claimed = services.outbox_messages_claim(target=target, owner="w", limit=10)
    assert sorted(m.customer_id for m in claimed) == sorted(c.pk for c in customers)
    lease = services.target_lease_seconds(target)
    rows = sorted(OutboxMessage.objects.all(), key=lambda m: m.lease_expires_at)
    assert all(m.status == "in_flight" and m.lease_owner == "w" and m.attempts == 1 for m in rows)
    # the i-th message's lease covers i earlier sends plus its own
    spans = [(m.lease_expires_at - rows[0].lease_expires_at).total_seconds() for m in rows]
    assert spans == pytest.approx([0, lease, 2 * lease], abs=0.01)
    # delivering them all: every customer once, in one claim
    for message in claimed:
        assert outbox_message_deliver(message=message, owner="w", adapter=adapter_for(target)) == "delivered"
    assert len(sandbox.state.requests_for("cdp")) == 3


def test_messages_claimed_but_unsent_when_the_time_is_up_go_back_uncounted(sandbox, monkeypatch):
    from targets import services

    target = make_target(sandbox, "cdp")
    for i in range(4):
        enqueue(make_customer(email=f"c{i}@example.com"))
    sent = []
    real = services.outbox_message_deliver

    def deliver_then_run_out_of_time(**kwargs):
        sent.append(kwargs["message"].pk)
        outcome = real(**kwargs)
        clock[0] += 100  # the pump's budget is spent after the first send
        return outcome

    real_monotonic = services.time.monotonic
    clock = [real_monotonic()]
    monkeypatch.setattr(services.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(services, "outbox_message_deliver", deliver_then_run_out_of_time)
    stats = services.outbox_deliver_due(target_id=target.pk, owner="w", deadline=clock[0] + 50, wait_for_due=False)
    assert stats == {"delivered": 1} and len(sent) == 1
    rest = OutboxMessage.objects.exclude(pk=sent[0])
    assert [(m.status, m.lease_owner, m.attempts) for m in rest] == [("pending", "", 0)] * 3
    monkeypatch.setattr(services.time, "monotonic", real_monotonic)
    monkeypatch.setattr(services, "outbox_message_deliver", real)
    deliver(target)
    assert OutboxMessage.objects.filter(status="delivered").count() == 4
    assert len(sandbox.state.requests_for("cdp")) == 4  # nothing sent twice


def test_a_change_made_after_a_batch_was_claimed_is_sent_right_after_the_stale_version(sandbox, monkeypatch):
    # given two messages claimed together (their customers read at claim time)
    from targets import services

    target = make_target(sandbox, "cdp")
    first, second = make_customer(email="a@example.com"), make_customer(email="b@example.com", version=1)
    enqueue(first)
    enqueue(second)
    real = services.outbox_message_deliver
    changed = []

    def change_second_after_first_send(**kwargs):
        outcome = real(**kwargs)
        if not changed:  # the golden record of the second customer changes while its message waits its turn
            changed.append(1)
            second.version, second.first_name = 2, "Moritz"
            second.save()
            enqueue(second)
        return outcome

    monkeypatch.setattr(services, "outbox_message_deliver", change_second_after_first_send)
    # when
    deliver(target)
    # then the target got version 1 (read at claim time), then at once version 2; never the other way round
    assert sandbox.state.versions_for("cdp", second.pk) == [1, 2]
    row = OutboxMessage.objects.get(customer=second)
    assert (row.status, row.sent_version) == ("delivered", 2)
