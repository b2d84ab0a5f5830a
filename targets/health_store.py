"""The circuit breaker's state in the database: conditional UPDATEs safe with any number of workers.

Transitions are decided by the pure `targets/health.py`; here they are read
and written. A failure is a compare-and-set on `health_seq` (read the row,
compute the new state, `UPDATE ... WHERE health_seq = <read>`, again on a
lost race), so two workers recording failures at once never lose one. An
answer is one UPDATE that matches only a target with something to reset,
and none at all when the caller knows the target was clean. The probe slot
is a lease taken with one conditional UPDATE (down, probe due, no hold, no
live lease), so only one probe is in flight per target, from any worker.
"""

import random
from dataclasses import asdict
from datetime import timedelta

from django.db.models import F, Q
from django.utils import timezone

from .health import Action, Gate, Health, gate, on_answer, on_failure
from .models import TargetRuntime

CAS_TRIES = 8
_FIELDS = {  # Health attribute -> TargetRuntime column
    "down": "health", "down_since": "down_since", "error": "health_error", "failures": "consecutive_failures",
    "failing_messages": "failing_messages", "last_failed_message": "last_failed_message_id",
    "probe_gap": "probe_gap_seconds", "next_probe_at": "next_probe_at", "retry_after_until": "retry_after_until",
}
_COLUMNS = [*_FIELDS.values(), "health_seq", "probe_owner", "probe_lease_until"]
DOWN, UP = TargetRuntime.Health.DOWN, TargetRuntime.Health.UP


def _state(row: dict) -> Health:
    values = {attr: row[column] for attr, column in _FIELDS.items()}
    values["down"] = row["health"] == DOWN
    return Health(**values)


def _columns(state: Health) -> dict:
    values = {_FIELDS[attr]: value for attr, value in asdict(state).items()}
    values["health"] = DOWN if state.down else UP
    return values


def _read(target_id: int) -> dict | None:
    row = TargetRuntime.objects.filter(target_id=target_id).values(*_COLUMNS).first()
    if row is None:
        TargetRuntime.objects.get_or_create(target_id=target_id)
        row = TargetRuntime.objects.filter(target_id=target_id).values(*_COLUMNS).first()
    return row


def target_health_get(*, target_id: int) -> Health:
    return _state(_read(target_id))


def target_gate(*, target_id: int, owner: str, probe_lease_seconds: float) -> tuple[Gate, Health]:
    """May this worker send to the target now? A PROBE answer means this worker holds the probe lease.

    The lease outlasts the probe request (`probe_lease_seconds`), so only a dead worker's probe expires.
    """
    now = timezone.now()
    row = _read(target_id)
    state = _state(row)
    in_flight = bool(row["probe_owner"]) and row["probe_lease_until"] is not None and row["probe_lease_until"] > now
    decision = gate(state, now=now, probe_in_flight=in_flight)
    if decision.action == Action.PROBE and not target_probe_acquire(target_id=target_id, owner=owner,
                                                                     seconds=probe_lease_seconds):
        decision = Gate(Action.WAIT, 0.25)  # another worker took the probe a moment ago
    return decision, state


def target_probe_acquire(*, target_id: int, owner: str, seconds: float) -> bool:
    """Take the one probe slot of a down target whose probe is due (one conditional UPDATE)."""
    now = timezone.now()
    return bool(
        TargetRuntime.objects.filter(target_id=target_id, health=DOWN)
        .filter(Q(next_probe_at__isnull=True) | Q(next_probe_at__lte=now))
        .filter(Q(retry_after_until__isnull=True) | Q(retry_after_until__lte=now))
        .filter(Q(probe_lease_until__isnull=True) | Q(probe_lease_until__lt=now) | Q(probe_owner=""))
        .update(probe_owner=owner, probe_lease_until=now + timedelta(seconds=seconds))
    )


def target_probe_release(*, target_id: int, owner: str) -> None:
    TargetRuntime.objects.filter(target_id=target_id, probe_owner=owner).update(probe_owner="", probe_lease_until=None)


def target_answered(*, target_id: int, known_clean: bool = False) -> None:
    """The target answered: up, streak reset. Nothing to write when it was clean (the common case)."""
    if known_clean:
        return
    # Any answer shows the target serves, whatever another worker saw: no read needed.
    fields = _columns(on_answer(Health(down=True)))
    fields.pop("retry_after_until")  # a hold the target asked for stays
    TargetRuntime.objects.filter(target_id=target_id).filter(
        Q(health=DOWN) | Q(consecutive_failures__gt=0)
    ).update(**fields, health_seq=F("health_seq") + 1)


def target_failed(*, target_id: int, message_id: int, error: str, retry_after: float | None, probe: bool,
                  rng: random.Random | None = None) -> Health:
    """Record a retryable failure (compare-and-set); returns the state after it."""
    for _ in range(CAS_TRIES):
        row = _read(target_id)
        before = _state(row)
        after = on_failure(before, now=timezone.now(), message_id=message_id, error=error, retry_after=retry_after,
                           probe=probe, rng=rng)
        if TargetRuntime.objects.filter(target_id=target_id, health_seq=row["health_seq"]).update(
                **_columns(after), health_seq=F("health_seq") + 1):
            return after
    return after  # heavy contention: our view is as good as any; the next failure records again


def target_attempted(*, target_id: int) -> None:
    """A worker sent to the target (read by the 'backlog nobody consumes' gauge)."""
    TargetRuntime.objects.filter(target_id=target_id).update(last_attempt_at=timezone.now())


def target_gate_wait(*, target_id: int) -> float:
    """Seconds until the target may be sent to (0: open, or its probe is due); takes nothing."""
    now = timezone.now()
    decision = gate(target_health_get(target_id=target_id), now=now, probe_in_flight=False)
    return decision.seconds if decision.action == Action.WAIT else 0.0
