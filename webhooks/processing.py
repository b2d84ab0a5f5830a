"""The worker side of the inbox: events in, golden records and outbox out.

`inbox_pump` is the django-q2 task the gateway enqueues after commit (at most
one wake-up per gateway process per `INBOX_KICK_INTERVAL_SECONDS`, the skipped
ones sent at the interval's end, so every accepted event is followed by a
wake-up). A pump claims batches of events and applies each batch in one
transaction until the inbox is empty. `inbox_event_process` is the
one-event task (sweeper, batch import, and the fallback for a failed batch).
The guarantees (DESIGN.md "Data flow"):

- Exactly-once effect: the golden-record change, its provenance, conflicts, the
  outbox rows and `status=processed` commit in ONE transaction (per event, or
  per batch); a crash at any point rolls all of it back and the events are
  simply tried again. A batch that fails for any reason is rolled back and its
  events are applied one by one, so one bad event never holds back the others.
- Safe to run twice: only an event we hold a live lease on is applied, and a
  processed event is never claimed again.
- Nothing depends on the task message: `inbox_sweep` (every minute) wakes the
  pump for events whose wake-up was lost (Redis broker, killed worker) once
  their lease ran out.
"""

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q import tasks as django_q_tasks

from canonical.events import IncomingEvent
from canonical.services import (
    CanonicalError, IdentifiersBusy, PreparedEvent, event_apply, event_prepare, prepared_event_apply, rules_load,
)
from core import metrics
from core.bulk import rows_update
from core.logging import correlation
from core.shutdown import shutdown_requested
from targets.services import outbox_enqueue

from .kick import Debounced
from .models import InboxEvent

logger = logging.getLogger(__name__)

LEASE_SECONDS = settings.INBOX_LEASE_SECONDS
# An event whose processing crashed this many times is parked as failed for support to replay.
MAX_ATTEMPTS = settings.INBOX_MAX_ATTEMPTS
# An event still `received` this long after arrival has lost its task message.
SWEEP_AFTER_SECONDS = settings.INBOX_SWEEP_AFTER_SECONDS
BATCH_SIZE = settings.INBOX_BATCH_SIZE
PUMP_BUDGET_SECONDS = settings.INBOX_PUMP_BUDGET_SECONDS

Status = InboxEvent.Status


# `lease_owner` of an event the sweeper re-enqueued: not a lease (any worker may claim it), but a
# note of when the sweeper may enqueue it again (`lease_expires_at`).
SWEPT = "sweeper"

PUMP_TASK = f"{__name__}.inbox_pump"


# --- Waking the pump ----------------------------------------------------------

def _pump_enqueue() -> None:
    django_q_tasks.async_task(PUMP_TASK)  # looked up per call: tests replace django_q.tasks.async_task


_debounced_kick: Debounced | None = None


def inbox_pump_kick(*, immediately: bool = False) -> None:
    """Wake the inbox pump (see `webhooks.kick`); call it after commit."""
    global _debounced_kick
    interval = settings.INBOX_KICK_INTERVAL_SECONDS
    if immediately or interval <= 0 or settings.Q_CLUSTER.get("sync"):
        _pump_enqueue()
        return
    if _debounced_kick is None:
        _debounced_kick = Debounced(_pump_enqueue, interval)
    _debounced_kick()


def inbox_pump_kick_on_commit() -> None:
    # robust: a broker outage after COMMIT is logged, not turned into a 500 for
    # an event that is safely stored; the sweeper enqueues it later.
    transaction.on_commit(inbox_pump_kick, robust=True)


def _claimable(now):
    """Events a worker may take: never processed, and not leased by a live worker."""
    return InboxEvent.objects.filter(status__in=[Status.RECEIVED, Status.PROCESSING]).filter(
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now) | Q(lease_owner=SWEPT)
    )


def inbox_event_claim(*, event_pk: int, owner: str) -> InboxEvent | None:
    """Take a lease on one event in a short transaction; None if it is done or held by another worker."""
    now = timezone.now()
    with transaction.atomic():
        event = (
            _claimable(now)
            # of=self: without it the join also locks the Source row, so a second
            # worker claiming another event of the same source skips it (skip_locked)
            # and the event waits for the sweeper.
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("source")
            .filter(pk=event_pk)
            .first()
        )
        if event is None:
            return None
        event.status = Status.PROCESSING
        event.lease_owner = owner
        event.lease_expires_at = now + timedelta(seconds=LEASE_SECONDS)
        event.attempts += 1
        event.save(update_fields=["status", "lease_owner", "lease_expires_at", "attempts"])
        return event


def _incoming(event: InboxEvent) -> IncomingEvent:
    return IncomingEvent(
        event_id=event.event_id,
        source=event.source.name,
        default_region=event.source.default_region,
        type=event.type,
        schema_version=event.schema_version,
        occurred_at=event.occurred_at,
        data=event.payload.get("data") or {},
    )


def _fenced(event: InboxEvent, owner: str):
    """The event row, locked, only while our lease is still the current one."""
    return (
        InboxEvent.objects.select_for_update()
        .filter(pk=event.pk, status=Status.PROCESSING, lease_owner=owner)
        .first()
    )


PROCESSED_FIELDS = ["status", "processed_at", "problems", "customer", "last_error", "lease_owner", "lease_expires_at"]


def _processed(event: InboxEvent, result) -> None:
    """The event's row as it is once applied (in memory; the caller saves PROCESSED_FIELDS)."""
    event.status, event.processed_at = Status.PROCESSED, timezone.now()
    event.problems, event.customer_id, event.last_error = result.problems, result.customer_id, ""
    event.lease_owner, event.lease_expires_at = "", None


def inbox_event_apply(*, event: InboxEvent, owner: str) -> str:
    """Apply a claimed event: golden record + outbox + processed, in one transaction."""
    try:
        with transaction.atomic():
            locked = _fenced(event, owner)
            if locked is None:
                return "lease_lost"
            result = event_apply(event=_incoming(locked))
            outbox_enqueue(changes=result.changes)
            _processed(locked, result)
            locked.save(update_fields=PROCESSED_FIELDS)
            return "processed"
    except CanonicalError as exc:
        # The event as a whole cannot be applied (e.g. unknown schema version): park it for support.
        _inbox_event_fail(event=event, owner=owner, error=str(exc), final=True)
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any crash: roll back, keep the event, retry later
        logger.exception("processing crashed; will retry after the lease")
        final = event.attempts >= MAX_ATTEMPTS
        _inbox_event_fail(event=event, owner=owner, error=f"{type(exc).__name__}: {exc}", final=final)
        return "failed" if final else "crashed"


def _inbox_event_fail(*, event: InboxEvent, owner: str, error: str, final: bool) -> None:
    fields = {"last_error": error[:2000]}
    if final:
        fields.update(status=Status.FAILED, lease_owner="", lease_expires_at=None)
    InboxEvent.objects.filter(pk=event.pk, lease_owner=owner).update(**fields)


def inbox_event_process(event_pk: int) -> str:
    """django-q2 task: claim, apply, record. Returns the outcome (also the metric label)."""
    owner = f"{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    event = inbox_event_claim(event_pk=event_pk, owner=owner)
    if event is None:
        return "skipped"
    with correlation(event.event_id):
        outcome = inbox_event_apply(event=event, owner=owner)
        elapsed = time.monotonic() - started
        metrics.inbox_processed(source=event.source.name, outcome=outcome, seconds=elapsed)
        log = logger.warning if outcome in ("failed", "crashed") else logger.info
        log("inbox event %s", outcome, extra={"source": event.source.name, "duration_ms": round(elapsed * 1000, 1)})
        return outcome


# --- batches ---------------------------------------------------------------------

def inbox_batch_claim(*, owner: str, limit: int) -> list[InboxEvent]:
    """Lease up to `limit` claimable events, oldest first, in one short transaction."""
    now = timezone.now()
    with transaction.atomic():
        events = list(
            _claimable(now).select_for_update(skip_locked=True, of=("self",))
            .select_related("source").order_by("pk")[:limit]
        )
        if not events:
            return []
        expires = now + timedelta(seconds=LEASE_SECONDS)
        InboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            status=Status.PROCESSING, lease_owner=owner, lease_expires_at=expires, attempts=F("attempts") + 1,
        )
    for event in events:  # the rows were locked from the SELECT to the UPDATE: their new state is known
        event.status, event.lease_owner, event.lease_expires_at = Status.PROCESSING, owner, expires
        event.attempts += 1
    return events


@dataclass
class BatchOutcome:
    outcomes: dict[int, str] = field(default_factory=dict)  # event pk -> processed / failed / crashed / lease_lost
    deferred: list[InboxEvent] = field(default_factory=list)  # identifiers busy in another transaction


def _prepare(events: list[InboxEvent], owner: str, result: BatchOutcome) -> list[tuple[InboxEvent, PreparedEvent]]:
    """Map and normalize every event; park those that can never apply (as the one-event path does)."""
    prepared = []
    for event in events:
        try:
            prepared.append((event, event_prepare(event=_incoming(event))))
        except CanonicalError as exc:
            _inbox_event_fail(event=event, owner=owner, error=str(exc), final=True)
            result.outcomes[event.pk] = "failed"
    return prepared


def inbox_batch_apply(*, events: list[InboxEvent], owner: str) -> BatchOutcome:
    """Apply claimed events in ONE transaction: golden records, one outbox write, all marked processed.

    No savepoint per event: if anything fails (a crash, a deadlock, an event
    that turns out to be inapplicable half-way) the whole batch rolls back and
    each event is applied alone by `inbox_event_apply`, which records its own
    outcome. An event whose identifiers another worker holds is deferred (it
    keeps its lease; the pump offers it to the next batch) instead of waiting
    while this batch holds its own locks, so two batches never deadlock on them.
    """
    result = BatchOutcome()
    prepared = _prepare(events, owner, result)
    if not prepared:
        return result
    try:
        with transaction.atomic():
            fenced = set(
                InboxEvent.objects.select_for_update()
                .filter(pk__in=[e.pk for e, _ in prepared], status=Status.PROCESSING, lease_owner=owner)
                .values_list("pk", flat=True)
            )
            rules = rules_load()
            done: list[InboxEvent] = []
            changes = []
            for event, ready in prepared:
                if event.pk not in fenced:
                    result.outcomes[event.pk] = "lease_lost"
                    continue
                with correlation(event.event_id):
                    try:
                        applied = prepared_event_apply(prepared=ready, rules=rules, lock_wait=False)
                    except IdentifiersBusy:
                        result.deferred.append(event)
                        continue
                changes.extend(applied.changes)
                _processed(event, applied)
                done.append(event)
            outbox_enqueue(changes=changes)
            rows_update(done, PROCESSED_FIELDS)
            result.outcomes.update((event.pk, "processed") for event in done)
    except Exception:  # noqa: BLE001 - any failure: nothing of the batch was written; go one by one
        logger.warning("batch of %d events rolled back; applying them one by one", len(prepared), exc_info=True)
        result = BatchOutcome(outcomes={pk: o for pk, o in result.outcomes.items() if o == "failed"})
        for event, _ in prepared:
            if event.pk not in result.outcomes:
                result.outcomes[event.pk] = inbox_event_apply(event=event, owner=owner)
    return result


def _batch_record(events: list[InboxEvent], result: BatchOutcome, seconds: float) -> None:
    per_event = seconds / max(len(events), 1)
    for event in events:
        outcome = result.outcomes.get(event.pk)
        if outcome is None:
            continue  # deferred
        metrics.inbox_processed(source=event.source.name, outcome=outcome, seconds=per_event)
        with correlation(event.event_id):  # the per-event line support greps for (runbook: tracing)
            log = logger.warning if outcome in ("failed", "crashed") else logger.info
            log("inbox event %s", outcome, extra={"source": event.source.name, "batch": len(events),
                                                  "duration_ms": round(per_event * 1000, 1)})


def inbox_pump(budget_seconds: float | None = None) -> dict:
    """django-q2 task: apply claimable events in batches until none is left or the budget is spent.

    Any number of pumps may run at once (each claims with SKIP LOCKED). One
    that runs out of budget with work left wakes a successor; so does one whose
    worker is stopping (SIGTERM/SIGINT), after the batch in hand.
    """
    owner = f"pump-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + (PUMP_BUDGET_SECONDS if budget_seconds is None else budget_seconds)
    totals: dict[str, int] = {}
    carried: list[InboxEvent] = []
    while True:
        started = time.monotonic()
        events = carried + inbox_batch_claim(owner=owner, limit=max(BATCH_SIZE - len(carried), 1))
        if not events:
            break
        result = inbox_batch_apply(events=events, owner=owner)
        _batch_record(events, result, time.monotonic() - started)
        for outcome in result.outcomes.values():
            totals[outcome] = totals.get(outcome, 0) + 1
        carried = result.deferred
        if len(carried) == len(events):
            time.sleep(0.05)  # all held by another batch: let it commit
        if time.monotonic() >= deadline or shutdown_requested():
            _pump_release(carried, owner)
            inbox_pump_kick(immediately=True)
            totals["handed_over"] = 1
            break
    if totals:
        logger.info("inbox pump: %s", ", ".join(f"{k}={v}" for k, v in sorted(totals.items())))
    return totals


def _pump_release(events: list[InboxEvent], owner: str) -> None:
    """Give deferred events back (their lease ends now) for the next pump."""
    if events:
        InboxEvent.objects.filter(pk__in=[e.pk for e in events], lease_owner=owner).update(
            lease_owner="", lease_expires_at=None, attempts=F("attempts") - 1,
        )


def inbox_sweep() -> int:
    """Periodic: wake the pump for events whose wake-up was lost. Returns how many events it found.

    An unfinished event may simply still be waiting behind a backlog: acting on
    every such event on every run would add the whole backlog to the queue once
    a minute and make it worse (seen in the scale-out test: ~1,000 extra tasks
    per sweep). So an event the sweeper marked is counted again only after
    another span as long as its age (at least SWEEP_AFTER_SECONDS). Events whose
    worker died (expired lease) are taken at the next run. The marked events
    are claimable by any pump; one wake-up per worker process starts enough
    pumps to take them all, however many there are.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=SWEEP_AFTER_SECONDS)
    rows = list(
        _claimable(now)
        .filter(received_at__lt=stale)
        .exclude(lease_owner=SWEPT, lease_expires_at__gt=now)
        .order_by("received_at")
        .values_list("pk", "received_at")[:5000]
    )
    marked = 0
    for pk, received_at in rows:
        again = now + max(timedelta(seconds=SWEEP_AFTER_SECONDS), now - received_at)
        # Conditional: an event a worker claimed since the SELECT keeps its lease.
        marked += _claimable(now).filter(pk=pk).update(lease_owner=SWEPT, lease_expires_at=again)
    if marked:
        for _ in range(min(marked, settings.Q_CLUSTER["workers"])):
            inbox_pump_kick(immediately=True)
        logger.info("inbox sweep found %d events without a live task; woke the pump", marked)
    return marked
