"""Writes of the targets app: enqueue, claim, deliver, pump, sweep, dead letters.

The outbox is the truth; django-q2 task messages are only kicks. Claiming is
a short transaction that sets a lease (owner + expiry); the HTTP call runs
outside any transaction; the result is written with an UPDATE fenced on the
lease owner, so a worker whose lease expired cannot overwrite a newer result.
"""

import logging
import os
import random
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Iterable

import requests
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from core.bulk import rows_update
from canonical.changes import CustomerChange
from canonical.models import Customer
from canonical.selectors import customer_snapshot
from core import metrics
from core.logging import correlation
from core.secrets import SecretReferenceError
from core.shutdown import shutdown_requested

from .adapters import TargetAdapter, adapter_for
from .auth import TargetAuthError
from .delivery import (
    failure_decision, idempotency_key, is_retryable_status, is_success, parse_retry_after, retry_delay,
)
from .health import Action, Health
from .health_store import (
    target_answered, target_attempted, target_failed, target_gate, target_gate_wait, target_health_get,
    target_probe_release,
)
from .mapping import DEFAULT_MAPPINGS
from .models import DeliveredState, DeliveryAttempt, OutboxMessage, Target, TargetFieldMapping, TargetRuntime
from .ratelimit import rate_limit_acquire, rate_limit_wait_record

logger = logging.getLogger(__name__)

Status = OutboxMessage.Status
Operation = OutboxMessage.Operation
ACTIVE = [Status.PENDING, Status.IN_FLIGHT]

PUMP_BUDGET_SECONDS = 20.0  # well under the Q timeout (60 s)
PUMP_IDLE_POLL_SECONDS = 0.25
KICK_SUPPRESS_SECONDS = 10
PAUSE_CHECK_SECONDS = 1.0  # a running pump notices a pause within this time
CLAIM_BATCH = 10  # messages per claim for a target without a rate limit
LEASE_MARGIN_SECONDS = 5.0
GATE_POLL_SECONDS = 1.0  # a pump waiting for a held or down target looks again this often
ERROR_EXCERPT_BYTES = 1024


def _excerpt(text: str) -> str:
    return (text or "")[:ERROR_EXCERPT_BYTES]


def worker_id() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def target_lease_seconds(target: Target) -> float:
    """Longer than any request can take (connect + read timeouts), so leases only expire for dead workers."""
    return 2 * target.timeout_seconds + LEASE_MARGIN_SECONDS


# --- targets -----------------------------------------------------------------

def target_mappings_ensure_defaults(*, target: Target) -> int:
    """Create the kind's default field mapping when the target has none (steward edits are kept)."""
    if target.field_mappings.exists():
        return 0
    rows = [
        TargetFieldMapping(target=target, canonical_field=field, target_path=path, order=index * 10)
        for index, (field, path) in enumerate(DEFAULT_MAPPINGS.get(target.kind, []))
    ]
    TargetFieldMapping.objects.bulk_create(rows)
    return len(rows)


def target_runtime_ensure(*, target_id: int) -> None:
    TargetRuntime.objects.get_or_create(target_id=target_id)


# --- enqueue -------------------------------------------------------------------

def _coalesce(changes: Iterable[CustomerChange]) -> dict[int, tuple[int, str, str]]:
    """Per customer: the newest version and its correlation id; a delete wins over upserts."""
    merged: dict[int, tuple[int, str, str]] = {}
    for change in sorted(changes, key=lambda c: (c.customer_id, c.version)):
        previous = merged.get(change.customer_id)
        operation = change.operation
        if previous and previous[1] == Operation.DELETE:
            operation = Operation.DELETE
        merged[change.customer_id] = (change.version, operation, change.correlation_id)
    return merged


_COALESCED_FIELDS = ["version", "operation", "correlation_id", "force_send", "updated_at"]


def _outbox_row_coalesce(*, row: OutboxMessage, version: int, operation: str, correlation_id: str,
                         resend: bool) -> bool:
    """Coalesce a change into the (locked) active row of its (target, customer), in memory; True if it changed."""
    # State transfer: keep the highest version; a delete supersedes a pending upsert.
    new_version = max(row.version, version)
    new_operation = Operation.DELETE if Operation.DELETE in (row.operation, operation) else Operation.UPSERT
    new_correlation = correlation_id if version > row.version else row.correlation_id
    if (new_version, new_operation, new_correlation, row.force_send or resend) == (
        row.version, row.operation, row.correlation_id, row.force_send
    ):
        return False
    row.version, row.operation, row.correlation_id = new_version, new_operation, new_correlation
    row.force_send, row.updated_at = row.force_send or resend, timezone.now()
    return True


def _outbox_row_update(*, row: OutboxMessage, version: int, operation: str, correlation_id: str, resend: bool) -> int:
    """Coalesce a change into the (locked) active row of its (target, customer) and save it."""
    if not _outbox_row_coalesce(row=row, version=version, operation=operation, correlation_id=correlation_id,
                                resend=resend):
        return 0
    rows_update([row], _COALESCED_FIELDS)
    return 1


def _outbox_row_write(*, target_id: int, customer_id: int, version: int, operation: str,
                      correlation_id: str, resend: bool) -> int:
    for _ in range(2):
        row = (
            OutboxMessage.objects.select_for_update()
            .filter(target_id=target_id, customer_id=customer_id, status__in=ACTIVE)
            .first()
        )
        if row is not None:
            return _outbox_row_update(row=row, version=version, operation=operation,
                                      correlation_id=correlation_id, resend=resend)
        try:
            with transaction.atomic():  # savepoint: a concurrent insert must not break the caller's transaction
                OutboxMessage.objects.create(
                    target_id=target_id, customer_id=customer_id, version=version, operation=operation,
                    correlation_id=correlation_id[:200], force_send=resend, next_attempt_at=timezone.now(),
                )
            return 1
        except IntegrityError:
            continue
    raise IntegrityError(f"could not write the outbox row for target {target_id}, customer {customer_id}")


def _outbox_rows_write(*, target_ids: list[int], merged: dict[int, tuple[int, str, str]], resend: bool) -> int:
    """Every (target, customer) pair in a few statements instead of four per pair.

    One SELECT ... FOR UPDATE finds the active rows to coalesce into; the
    missing rows are inserted with one multi-row INSERT in a savepoint. If a
    concurrent writer inserted one of them first (unique active row), the
    savepoint rolls back and each missing pair takes the row-by-row path.
    """
    existing = {
        (row.target_id, row.customer_id): row
        for row in OutboxMessage.objects.select_for_update().filter(
            target_id__in=target_ids, customer_id__in=list(merged), status__in=ACTIVE,
        ).order_by("target_id", "customer_id")  # one lock order for every writer
    }
    changed = []
    missing = []
    for target_id in target_ids:
        for customer_id, (version, operation, correlation_id) in merged.items():
            row = existing.get((target_id, customer_id))
            if row is None:
                missing.append((target_id, customer_id, version, operation, correlation_id or ""))
            elif _outbox_row_coalesce(row=row, version=version, operation=operation,
                                      correlation_id=correlation_id or "", resend=resend):
                changed.append(row)
    rows_update(changed, _COALESCED_FIELDS)
    written = len(changed)
    if not missing:
        return written
    now = timezone.now()
    try:
        with transaction.atomic():
            OutboxMessage.objects.bulk_create([
                OutboxMessage(target_id=t, customer_id=c, version=v, operation=op, correlation_id=corr[:200],
                              force_send=resend, next_attempt_at=now)
                for t, c, v, op, corr in missing
            ])
        return written + len(missing)
    except IntegrityError:
        pass
    for t, c, v, op, corr in missing:
        written += _outbox_row_write(target_id=t, customer_id=c, version=v, operation=op, correlation_id=corr,
                                     resend=resend)
    return written


def outbox_enqueue(*, changes: Iterable[CustomerChange], resend: bool = False,
                   target_ids: Iterable[int] | None = None) -> int:
    """Write or coalesce outbox rows for every enabled target; kick delivery on commit.

    Call inside the transaction that changed the golden records. `resend`
    sends even versions a target already acknowledged (reconciliation fixes);
    `target_ids` limits the rows to those targets (still only enabled ones).
    Returns the number of rows written (created or updated).
    """
    merged = _coalesce(changes)
    if not merged:
        return 0
    enabled = Target.objects.filter(enabled=True)
    if target_ids is not None:
        enabled = enabled.filter(pk__in=list(target_ids))
    states = list(enabled.values_list("pk", "paused_at"))
    if not states:
        return 0
    # A paused target gets its rows (they coalesce until resume) but no pump.
    target_ids = [pk for pk, _ in states]
    written = _outbox_rows_write(target_ids=target_ids, merged=merged, resend=resend)
    # Kick after commit: with the ORM broker the task row would roll back with us anyway,
    # with Redis it would otherwise run before our rows are visible.
    transaction.on_commit(partial(target_pumps_kick, target_ids=[pk for pk, paused in states if paused is None]))
    return written


# --- kicking the pump ------------------------------------------------------------

def _q_sync() -> bool:
    return bool(settings.Q_CLUSTER.get("sync"))


def target_pumps_kick(*, target_ids: Iterable[int], force: bool = False) -> int:
    """Enqueue a pump task per target unless one runs or was just requested. Returns tasks enqueued."""
    from django_q.tasks import async_task

    enqueued = 0
    for target_id in target_ids:
        now = timezone.now()
        runtime = TargetRuntime.objects.filter(target_id=target_id).filter(
            Q(pump_lease_until__isnull=True) | Q(pump_lease_until__lt=now)
        )
        if not force:
            runtime = runtime.filter(
                Q(pump_requested_at__isnull=True) | Q(pump_requested_at__lt=now - timedelta(seconds=KICK_SUPPRESS_SECONDS))
            )
        updated = runtime.update(pump_requested_at=now)
        if not updated and not TargetRuntime.objects.filter(target_id=target_id).exists():
            # The runtime row is created once per target; only then is the extra round trip needed.
            target_runtime_ensure(target_id=target_id)
            updated = runtime.update(pump_requested_at=now)
        if updated:
            async_task("targets.tasks.target_pump", target_id, cluster=settings.DELIVERY_CLUSTER,
                       task_name=f"target_pump:{target_id}:{uuid.uuid4().hex[:8]}")
            enqueued += 1
    return enqueued


def _pump_lease_acquire(*, target_id: int, owner: str, seconds: float) -> bool:
    target_runtime_ensure(target_id=target_id)
    now = timezone.now()
    return bool(
        TargetRuntime.objects.filter(target_id=target_id)
        .filter(Q(pump_lease_until__isnull=True) | Q(pump_lease_until__lt=now))
        .update(pump_owner=owner, pump_lease_until=now + timedelta(seconds=seconds), pump_requested_at=None)
    )


def _pump_lease_release(*, target_id: int, owner: str) -> None:
    TargetRuntime.objects.filter(target_id=target_id, pump_owner=owner).update(pump_owner="", pump_lease_until=None)


def _due_filter(target_id: int, now) -> Q:
    return Q(target_id=target_id, status__in=ACTIVE, next_attempt_at__lte=now)


def target_pump(*, target_id: int, budget_seconds: float = PUMP_BUDGET_SECONDS) -> dict:
    """Deliver a target's due messages for a bounded time; one pump per target at a time."""
    target = Target.objects.filter(pk=target_id).first()
    if target is None or not target.enabled:
        return {"skipped": "no such enabled target"}
    if target.paused_at is not None:
        return {"skipped": "paused"}
    owner = worker_id()
    if not _pump_lease_acquire(target_id=target_id, owner=owner, seconds=budget_seconds + target_lease_seconds(target)):
        return {"skipped": "another pump runs"}
    try:
        stats = outbox_deliver_due(
            target_id=target_id, owner=owner, deadline=time.monotonic() + budget_seconds,
            wait_for_due=not _q_sync(),
        )
    finally:
        _pump_lease_release(target_id=target_id, owner=owner)
    # A kick that came while we held the lease was skipped: look once more after releasing it.
    # A target held or down for longer than a pump's budget is left to the minute sweep (no busy re-kicks).
    if not _q_sync() and OutboxMessage.objects.filter(_due_filter(target_id, timezone.now())).exists() \
            and target_gate_wait(target_id=target_id) < budget_seconds:
        target_pumps_kick(target_ids=[target_id], force=True)
    return dict(stats)


def outbox_sweep() -> dict:
    """Kick every target with due or lease-expired messages (their task may have been lost)."""
    now = timezone.now()
    # order_by(): the model's default ordering (-id) would make DISTINCT per row, one "target" per message.
    target_ids = list(
        OutboxMessage.objects.filter(status__in=ACTIVE, next_attempt_at__lte=now, target__enabled=True,
                                     target__paused_at__isnull=True)
        .order_by().values_list("target_id", flat=True).distinct()
    )
    return {"targets": len(target_ids), "kicked": target_pumps_kick(target_ids=target_ids)}


# --- claiming and delivering ------------------------------------------------------

def outbox_messages_claim(*, target: Target, owner: str, limit: int) -> list[OutboxMessage]:
    """Take up to `limit` due messages of a target (oldest due first) in one short transaction.

    Due = pending and next_attempt_at passed, or in_flight with an expired
    lease (a killed worker): in flight, next_attempt_at holds the lease expiry.
    The claimer sends them one after another, so the i-th (from 0) gets a lease
    of (i + 1) x `target_lease_seconds`: each lease outlasts every send before it and
    its own, and a killed worker's first message comes back as soon as before.
    """
    now = timezone.now()
    with transaction.atomic():
        candidates = OutboxMessage.objects.filter(_due_filter(target.pk, now)).order_by("next_attempt_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        messages = list(candidates[:limit])
        # The rows are locked from the SELECT to our UPDATE: their new state is known without reading them again.
        for position, message in enumerate(messages):
            expires = now + timedelta(seconds=(position + 1) * target_lease_seconds(target))
            message.status, message.lease_owner, message.lease_expires_at = Status.IN_FLIGHT, owner, expires
            message.next_attempt_at, message.attempts, message.updated_at = expires, message.attempts + 1, now
        rows_update(messages, ["status", "lease_owner", "lease_expires_at", "next_attempt_at", "attempts", "updated_at"])
    return messages


def outbox_message_claim(*, target: Target, owner: str) -> OutboxMessage | None:
    """Take the next due message of a target (see `outbox_messages_claim`)."""
    messages = outbox_messages_claim(target=target, owner=owner, limit=1)
    return messages[0] if messages else None


def _claimed_release(messages: list[OutboxMessage], owner: str) -> None:
    """Give claimed but unsent messages back (the pump's time is up): due now, the attempt not counted."""
    for message in messages:
        OutboxMessage.objects.filter(pk=message.pk, lease_owner=owner, status=Status.IN_FLIGHT).update(
            status=Status.PENDING, lease_owner="", lease_expires_at=None, next_attempt_at=timezone.now(),
            attempts=F("attempts") - 1, updated_at=timezone.now(),
        )


@dataclass
class _Result:
    status: int | None
    error: str
    retryable: bool
    retry_after: float | None
    latency_ms: int
    timed_out: bool = False  # the request was sent and may still land late


def _send(adapter: TargetAdapter, call, *, key: str, correlation_id: str, version: int, operation: str) -> _Result:
    started = time.monotonic()
    elapsed = lambda: int((time.monotonic() - started) * 1000)  # noqa: E731
    try:
        result = adapter.send(call, idempotency_key=key, correlation_id=correlation_id, version=version)
    except SecretReferenceError as exc:  # names the variable, never a value
        return _Result(None, str(exc), False, None, elapsed())
    except TargetAuthError as exc:
        return _Result(exc.status, str(exc), exc.retryable, None, elapsed())
    except requests.Timeout as exc:
        return _Result(None, f"timeout after {adapter.target.timeout_seconds:g} s", True, None, elapsed(),
                       timed_out=not isinstance(exc, requests.ConnectTimeout))
    except requests.ConnectionError as exc:
        return _Result(None, f"connection error: {type(exc).__name__}", True, None, elapsed())
    except requests.RequestException as exc:
        return _Result(None, f"request failed: {type(exc).__name__}", True, None, elapsed())
    if is_success(result.status) or (operation == Operation.DELETE and result.status in (404, 410)):
        # A delete that finds nothing: the state the target should have already holds.
        return _Result(result.status, "", False, None, result.latency_ms)
    return _Result(
        result.status, _excerpt(result.body_excerpt), is_retryable_status(result.status),
        parse_retry_after(result.retry_after), result.latency_ms,
    )


def _delivered_state_record(*, message: OutboxMessage, version: int, operation: str, body, key: str,
                            known: bool) -> None:
    """Remember what the target acknowledged; never move it to an older version.

    `known`: a row existed when the message was claimed (rows are never deleted
    while messages exist), so a conditional UPDATE is all it takes; otherwise
    INSERT first, and fall back to the UPDATE if a concurrent delivery inserted it.
    """
    now = timezone.now()
    fields = dict(version=version, operation=operation, body=body, idempotency_key=key, delivered_at=now, updated_at=now)
    if not known:
        try:
            with transaction.atomic():  # savepoint: a concurrent insert must not break the caller's transaction
                DeliveredState.objects.create(target_id=message.target_id, customer_id=message.customer_id, **fields)
            return
        except IntegrityError:
            pass
    DeliveredState.objects.filter(
        target_id=message.target_id, customer_id=message.customer_id, version__lte=version
    ).update(**fields)


@dataclass
class _Prefetched:
    """What `outbox_message_deliver` reads per message, read for a whole claim at once."""

    customer: Customer
    state: DeliveredState | None


def _prefetch(target: Target, messages: list[OutboxMessage]) -> dict[int, _Prefetched]:
    """Customers (with external ids) and delivered states of claimed messages, in three queries.

    Read at claim time, a moment before each send: a change committed since then
    was coalesced into the (leased) message row with a newer version, so the
    version fence sends it again right after (see `outbox_message_deliver`).
    """
    ids = [m.customer_id for m in messages]
    customers = Customer.objects.prefetch_related("external_ids").in_bulk(ids)
    states = {s.customer_id: s for s in DeliveredState.objects.filter(target_id=target.pk, customer_id__in=ids)}
    return {m.pk: _Prefetched(customers[m.customer_id], states.get(m.customer_id)) for m in messages}


def outbox_message_deliver(*, message: OutboxMessage, owner: str, adapter: TargetAdapter,
                           rng: random.Random | None = None, prefetched: _Prefetched | None = None,
                           probe: bool = False, health_clean: bool = False) -> str:
    """Send one claimed message and record the outcome (the message's and the target's health); returns the outcome.

    `probe`: the request is the one probe of a down target. `health_clean`: the
    caller read the target up with no failure streak, so a success writes no health.
    """
    target = adapter.target
    customer = prefetched.customer if prefetched else Customer.objects.get(pk=message.customer_id)
    snapshot = customer_snapshot(customer=customer)
    # State transfer: send what the golden record is now; a tombstone is always a delete.
    operation = Operation.DELETE if (snapshot["deleted"] or message.operation == Operation.DELETE) else Operation.UPSERT
    version = int(snapshot["version"])
    fence = OutboxMessage.objects.filter(pk=message.pk, lease_owner=owner, status=Status.IN_FLIGHT)

    if prefetched is not None:
        state = prefetched.state
    else:
        state = DeliveredState.objects.filter(target_id=target.pk, customer_id=message.customer_id).first()
    if state is not None and not message.force_send and (
        state.version > version or (state.version == version and state.operation == operation)
    ):
        # The target already holds this state or a newer one: never move it backwards.
        fence.update(status=Status.SUPERSEDED, lease_owner="", lease_expires_at=None, updated_at=timezone.now(),
                     last_error=f"target already has version {state.version}")
        return "superseded"

    key = idempotency_key(target_name=target.name, customer_id=message.customer_id, version=version, operation=operation)
    call = adapter.prepare(snapshot=snapshot, operation=operation)
    started_at = timezone.now()
    result = _send(adapter, call, key=key, correlation_id=message.correlation_id, version=version, operation=operation)
    succeeded = result.status is not None and not result.error and not result.retryable and (
        is_success(result.status) or operation == Operation.DELETE)
    now = timezone.now()
    release = dict(lease_owner="", lease_expires_at=None, last_status=result.status, updated_at=now)
    health = _target_health_record(target=target, message=message, result=result, succeeded=succeeded, probe=probe,
                                   health_clean=health_clean, rng=rng)

    with transaction.atomic():
        if succeeded:
            _delivered_state_record(message=message, version=version, operation=operation, body=call.state_body, key=key,
                                    known=state is not None)
            done = fence.filter(version__lte=version).update(
                status=Status.DELIVERED, delivered_at=now, sent_version=version, last_error="", force_send=False,
                first_failed_at=None, **release
            )
            if done:
                outcome = DeliveryAttempt.Outcome.DELIVERED
            elif fence.update(status=Status.PENDING, next_attempt_at=now, attempts=0, sent_version=version,
                              first_failed_at=None, **release):
                # A newer change was coalesced into this row while it was in flight: send again.
                outcome = DeliveryAttempt.Outcome.DELIVERED
            else:
                outcome = DeliveryAttempt.Outcome.LOST
        else:
            first_failed_at = message.first_failed_at or now
            decision = failure_decision(
                retryable=result.retryable, retry_after=result.retry_after, target_down=bool(health and health.down),
                attempts=message.attempts, max_retries=target.max_retries, first_failed_at=first_failed_at, now=now,
                retry_window_hours=target.retry_window_hours,
            )
            failed = dict(release, sent_version=version, first_failed_at=first_failed_at)
            if not decision.counted:  # the target's condition (held, down): the message keeps its attempts
                failed["attempts"] = F("attempts") - 1
            if decision.outcome == "retry":
                due = now + timedelta(seconds=_retry_wait(target=target, message=message, result=result,
                                                          counted=decision.counted, rng=rng))
                if not decision.counted:
                    # Not before the hold ends or the next probe (so the next probe takes another message).
                    due = max([due] + [t for t in (health.retry_after_until, health.next_probe_at) if t])
                done = fence.update(status=Status.PENDING, next_attempt_at=due, last_error=result.error, **failed)
                outcome = DeliveryAttempt.Outcome.RETRY if done else DeliveryAttempt.Outcome.LOST
            else:
                final = Status.DEAD if target.dead_letter_queue else Status.DISCARDED
                error = result.error
                if decision.window_passed:
                    error = _window_error(target, result.error)
                done = fence.update(status=final, last_error=error, **failed)
                outcome = DeliveryAttempt.Outcome.DEAD if done else DeliveryAttempt.Outcome.LOST
        DeliveryAttempt.objects.create(
            message_id=message.pk, started_at=started_at, operation=operation, version=version,
            status_code=result.status, latency_ms=result.latency_ms, outcome=outcome,
            error=_excerpt(result.error), idempotency_key=key,
        )
    if outcome != DeliveryAttempt.Outcome.DELIVERED:
        logger.info("outbox message %s to %s: %s (status %s, attempt %s)",
                    message.pk, target.name, outcome, result.status, message.attempts)
    if health is not None and health.down:
        _window_expire(target=target)
    return outcome


def _target_health_record(*, target: Target, message: OutboxMessage, result: "_Result", succeeded: bool,
                          probe: bool, health_clean: bool, rng: random.Random | None) -> Health | None:
    """Tell the circuit breaker what the try showed; returns the state after a retryable failure."""
    if result.retryable:
        return target_failed(target_id=target.pk, message_id=message.pk, error=result.error,
                             retry_after=result.retry_after, probe=probe, rng=rng)
    if succeeded or result.status is not None:  # an answer, even a refusal: the target serves
        target_answered(target_id=target.pk, known_clean=health_clean)
    return None


def _retry_wait(*, target: Target, message: OutboxMessage, result: "_Result", counted: bool,
                rng: random.Random | None) -> float:
    """Seconds until the message may be tried again: its own backoff, or only the timed-out request's margin."""
    retry_after = result.retry_after
    if result.timed_out:
        # The timed-out request may still land; the next send (perhaps of a newer version) must not
        # overtake it: wait until it is as old as a lease assumes any request can get (target_lease_seconds).
        retry_after = max(retry_after or 0.0, target_lease_seconds(target) - target.timeout_seconds)
    if not counted:
        return retry_after or 0.0
    return retry_delay(attempts=message.attempts, backoff_seconds=target.backoff_seconds,
                       retry_after=retry_after, rng=rng)


def _window_error(target: Target, error: str) -> str:
    return _excerpt(f"retry window of {target.retry_window_hours:g} h passed while the target was down or "
                    f"held; last error: {error}")


def _window_expire(*, target: Target) -> int:
    """Give up the waiting messages of a down target whose first failed attempt is older than its window."""
    cutoff = timezone.now() - timedelta(hours=target.retry_window_hours)
    expired = list(OutboxMessage.objects.filter(target_id=target.pk, status=Status.PENDING,
                                                first_failed_at__lte=cutoff).values_list("pk", flat=True)[:1000])
    if not expired:
        return 0
    final = Status.DEAD if target.dead_letter_queue else Status.DISCARDED
    count = OutboxMessage.objects.filter(pk__in=expired, status=Status.PENDING).update(
        status=final, updated_at=timezone.now(),
        last_error=_window_error(target, "see the message's last attempt"),
    )
    if final == Status.DEAD:
        metrics.dead_lettered(target=target.name, count=count)
    logger.info("target %s: %s messages past their retry window given up", target.name, count)
    return count


def outbox_deliver_due(*, target_id: int, owner: str, deadline: float, wait_for_due: bool = True,
                       rng: random.Random | None = None) -> Counter:
    """Deliver due messages of one target until none are due or `deadline` (monotonic) passes.

    Takes a rate-limit slot before each claim (without a limit, claims up to
    CLAIM_BATCH messages at once); waits (bounded by the deadline)
    for a slot and, with `wait_for_due`, for messages due within the window.
    Never sleeps for a retry: a failed message gets a later next_attempt_at.
    """
    stats: Counter = Counter()
    target = Target.objects.get(pk=target_id)
    adapter = adapter_for(target)
    claimed: list[OutboxMessage] = []
    try:
        _deliver_loop(target=target, adapter=adapter, owner=owner, deadline=deadline, wait_for_due=wait_for_due,
                      rng=rng, stats=stats, claimed=claimed)
    finally:
        _claimed_release(claimed, owner)  # claimed but not sent when the time was up (or a crash)
        target_probe_release(target_id=target_id, owner=owner)  # a probe slot taken but not used
        if any(stats[o] for o in DeliveryAttempt.Outcome.values):
            target_attempted(target_id=target_id)
    return stats


def _deliver_loop(*, target: Target, adapter: TargetAdapter, owner: str, deadline: float, wait_for_due: bool,
                  rng: random.Random | None, stats: Counter, claimed: list[OutboxMessage]) -> None:
    target_id = target.pk
    prefetched: dict[int, _Prefetched] = {}
    # Right after a delivery (no rate limit) or a rate-limit wait, a message was due a
    # moment ago: claim directly and look for due messages only when the claim finds none.
    due_known = False
    pause_checked = time.monotonic()
    for _ in range(1_000_000):
        if time.monotonic() >= deadline or shutdown_requested():  # stopping: hand over between messages
            break
        if time.monotonic() - pause_checked >= PAUSE_CHECK_SECONDS:
            # A pause takes effect within this interval, at no cost per message.
            pause_checked = time.monotonic()
            if Target.objects.filter(pk=target_id, paused_at__isnull=False).exists():
                break
        now = timezone.now()
        if not claimed and not due_known and not OutboxMessage.objects.filter(_due_filter(target_id, now)).exists():
            if not wait_for_due:
                break
            next_due = OutboxMessage.objects.filter(target_id=target_id, status__in=ACTIVE).aggregate(
                next=Min("next_attempt_at"))["next"]
            if next_due is None or (next_due - now).total_seconds() > deadline - time.monotonic():
                break
            time.sleep(min(PUMP_IDLE_POLL_SECONDS, max(0.01, (next_due - now).total_seconds())))
            continue
        # The circuit breaker, before every request: held (Retry-After) or down -> wait; down -> one probe.
        gate, health = target_gate(target_id=target_id, owner=owner, probe_lease_seconds=target_lease_seconds(target))
        if gate.action == Action.WAIT:
            _claimed_release(claimed, owner)
            claimed.clear()
            if not wait_for_due or time.monotonic() + gate.seconds > deadline:
                break
            stats["gate_waits"] += 1
            time.sleep(max(0.01, min(gate.seconds, GATE_POLL_SECONDS)))
            due_known = False
            continue
        probing = gate.action == Action.PROBE
        wait = rate_limit_acquire(target_id=target_id, per_minute=target.rate_limit_per_minute)
        if wait > 0:
            if time.monotonic() + wait > deadline:
                break
            stats["rate_limit_waits"] += 1
            rate_limit_wait_record(target_id=target_id)
            metrics.rate_limit_waited(target=target.name)
            logger.debug("target %s: rate-limit wait %.3f s", target.name, wait)
            time.sleep(wait)
            due_known = True
            continue
        if not claimed:
            # Unlimited: several messages per claim. Limited: one per slot, claimed after taking it. A probe: one.
            limit = CLAIM_BATCH if target.rate_limit_per_minute <= 0 and not probing else 1
            claimed.extend(outbox_messages_claim(target=target, owner=owner, limit=limit))
            prefetched = _prefetch(target, claimed) if len(claimed) > 1 else {}
        message = claimed.pop(0) if claimed else None
        if message is None:
            if probing:
                target_probe_release(target_id=target_id, owner=owner)
            if due_known:  # unchecked: look again (the slot, if any, is spent as before)
                due_known = False
                continue
            time.sleep(0.05)  # another worker took it (skip-locked): do not spin
            continue
        due_known = target.rate_limit_per_minute <= 0
        with correlation(message.correlation_id):
            started = time.monotonic()
            outcome = outbox_message_deliver(message=message, owner=owner, adapter=adapter, rng=rng,
                                             prefetched=prefetched.get(message.pk), probe=probing,
                                             health_clean=health.clean)
            metrics.delivery_recorded(target=target.name, outcome=outcome, seconds=time.monotonic() - started)
        stats[outcome] += 1
        if probing:
            _probe_finish(target=target, owner=owner, outcome=outcome, stats=stats)


def _probe_finish(*, target: Target, owner: str, outcome: str, stats: Counter) -> None:
    """Free the probe slot and count the probe (a superseded message sent nothing: no probe)."""
    target_probe_release(target_id=target.pk, owner=owner)
    if outcome in (DeliveryAttempt.Outcome.DELIVERED, DeliveryAttempt.Outcome.RETRY, DeliveryAttempt.Outcome.DEAD):
        result = "failed" if target_health_get(target_id=target.pk).down else "succeeded"
        stats[f"probe_{result}"] += 1
        metrics.target_probed(target=target.name, outcome=result)
        logger.info("target %s: probe %s", target.name, result)


# --- dead letters -----------------------------------------------------------------

def dead_letter_replay(*, message_ids: Iterable[int] | None = None, target_name: str | None = None) -> dict:
    """Dead messages back to pending, attempts reset, due now; kicks delivery on commit.

    Replay re-sends the current golden state with the key of its version, so an
    effect that already happened is not repeated. Where a newer message for the
    same (target, customer) is already pending, the dead one is marked
    superseded instead: the pending one carries the newer state.
    """
    dead = OutboxMessage.objects.filter(status=Status.DEAD)
    if message_ids is not None:
        dead = dead.filter(pk__in=list(message_ids))
    if target_name:
        dead = dead.filter(target__name=target_name)
    counts = {"replayed": 0, "superseded": 0}
    target_ids: set[int] = set()
    with transaction.atomic():
        for message in dead.select_for_update().order_by("-version", "-id"):
            now = timezone.now()
            try:
                with transaction.atomic():
                    OutboxMessage.objects.filter(pk=message.pk, status=Status.DEAD).update(
                        status=Status.PENDING, attempts=0, next_attempt_at=now, lease_owner="",
                        lease_expires_at=None, first_failed_at=None, updated_at=now,
                    )
                counts["replayed"] += 1
                target_ids.add(message.target_id)
            except IntegrityError:
                OutboxMessage.objects.filter(pk=message.pk).update(status=Status.SUPERSEDED, updated_at=now)
                counts["superseded"] += 1
        if target_ids:
            transaction.on_commit(partial(target_pumps_kick, target_ids=sorted(target_ids)))
    return counts


def dead_letter_discard(*, message_ids: Iterable[int]) -> int:
    """Give up on dead messages for good (kept, marked discarded)."""
    return OutboxMessage.objects.filter(pk__in=list(message_ids), status=Status.DEAD).update(
        status=Status.DISCARDED, updated_at=timezone.now()
    )
