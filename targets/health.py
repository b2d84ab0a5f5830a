"""Target health, a circuit breaker per target: pure functions over a frozen state, no database.

Outages belong to the target, not to each message. The state lives on
`TargetRuntime` (written by `targets/health_store.py` with conditional
UPDATEs); this module decides every transition:

| event | target up | target down |
|---|---|---|
| an answer (2xx; also 3xx/4xx: the target is serving, the message is at fault) | failure streak reset | up again: the backlog drains at the rate limit |
| outage failure (5xx, 408, 425, 429 without `Retry-After`, timeout, connection error) | streak + 1; at `DOWN_AFTER_FAILURES` consecutive failures over at least `DOWN_AFTER_MESSAGES` different messages: down, first probe after `FIRST_PROBE_GAP` | a failed probe: the gap doubles up to `MAX_PROBE_GAP`; a stale request of before the fall changes nothing |
| `Retry-After` (429, or a retryable status with the header; capped at `MAX_RETRY_AFTER_SECONDS`) | the whole target is held until then | held, and the next probe is not before then |

The gate, asked before every request (`gate`): held -> wait until the hold
ends; down -> one probe when its time has come and no other probe is in
flight, else wait; otherwise open.

A single message failing again and again while nothing else fails is not an
outage (it may be the message): it keeps its own `max_retries`. Probe gaps
use equal jitter: the wait is uniform(gap / 2, gap), so probes from many
targets spread out and a gap never exceeds its cap.
"""

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

DOWN_AFTER_FAILURES = 5
DOWN_AFTER_MESSAGES = 2
FIRST_PROBE_GAP = 1.0
MAX_PROBE_GAP = 300.0
ERROR_EXCERPT = 500


@dataclass(frozen=True)
class Health:
    """What the breaker knows about one target (times are aware datetimes)."""

    down: bool = False
    down_since: datetime | None = None
    error: str = ""
    failures: int = 0  # consecutive outage failures
    failing_messages: int = 0  # different messages among them (counted on each change of message)
    last_failed_message: int | None = None
    probe_gap: float = 0.0  # seconds; the gap before the next probe
    next_probe_at: datetime | None = None
    retry_after_until: datetime | None = None

    @property
    def clean(self) -> bool:
        """Up with no failure streak: a success changes nothing."""
        return not self.down and self.failures == 0


UP = Health()


class Action(str, Enum):
    OPEN = "open"
    PROBE = "probe"
    WAIT = "wait"


@dataclass(frozen=True)
class Gate:
    action: Action
    seconds: float = 0.0  # how long to wait (Action.WAIT)


def probe_wait(gap: float, *, rng: random.Random | None = None) -> float:
    """Equal jitter: uniform(gap / 2, gap)."""
    return (rng or random).uniform(gap / 2, gap)


def next_gap(gap: float) -> float:
    return min(MAX_PROBE_GAP, max(FIRST_PROBE_GAP, gap * 2))


def on_answer(state: Health) -> Health:
    """The target answered (success or a message-specific refusal): up, streak reset; a hold stays."""
    if state.clean:
        return state
    return replace(UP, retry_after_until=state.retry_after_until)


def on_failure(state: Health, *, now: datetime, message_id: int, error: str, retry_after: float | None,
               probe: bool, rng: random.Random | None = None) -> Health:
    """A retryable failure of one request to the target."""
    excerpt = (error or "")[:ERROR_EXCERPT]
    hold = state.retry_after_until
    if retry_after is not None:
        until = now + timedelta(seconds=retry_after)
        hold = until if hold is None or until > hold else hold
    if state.down:
        if not probe:  # a request that left before the fall: no news
            return replace(state, error=excerpt, retry_after_until=hold)
        gap = next_gap(state.probe_gap)
        return replace(state, error=excerpt, probe_gap=gap, retry_after_until=hold,
                       next_probe_at=_not_before(now + timedelta(seconds=probe_wait(gap, rng=rng)), hold))
    if retry_after is not None:
        # The target says when: hold it as a whole; this is not a sign of an outage.
        return replace(state, error=excerpt, retry_after_until=hold)
    failing = state.failing_messages + (1 if message_id != state.last_failed_message else 0)
    failures = state.failures + 1
    if failures >= DOWN_AFTER_FAILURES and failing >= DOWN_AFTER_MESSAGES:
        gap = FIRST_PROBE_GAP
        return Health(down=True, down_since=now, error=excerpt, failures=failures, failing_messages=failing,
                      last_failed_message=message_id, probe_gap=gap, retry_after_until=hold,
                      next_probe_at=_not_before(now + timedelta(seconds=probe_wait(gap, rng=rng)), hold))
    return replace(state, error=excerpt, failures=failures, failing_messages=failing,
                   last_failed_message=message_id, retry_after_until=hold)


def _not_before(moment: datetime, hold: datetime | None) -> datetime:
    return hold if hold is not None and hold > moment else moment


def gate(state: Health, *, now: datetime, probe_in_flight: bool) -> Gate:
    """May a request go to the target now?"""
    if state.retry_after_until is not None and state.retry_after_until > now:
        return Gate(Action.WAIT, (state.retry_after_until - now).total_seconds())
    if not state.down:
        return Gate(Action.OPEN)
    if state.next_probe_at is not None and state.next_probe_at > now:
        return Gate(Action.WAIT, (state.next_probe_at - now).total_seconds())
    if probe_in_flight:
        return Gate(Action.WAIT, min(1.0, max(FIRST_PROBE_GAP, state.probe_gap) / 2))
    return Gate(Action.PROBE)
