"""The retry policy and the idempotency key: pure functions, no database.

What happens to a message after one try (`failure_decision` for the failures;
the target's side, up or down, is `targets/health.py`):

| outcome | when | attempt counted |
|---|---|---|
| delivered | 2xx | - |
| dead | any other status (3xx, 4xx): at once, whatever the target's health | yes |
| retry (own backoff) | 408, 425, 429, 5xx, timeouts, connection errors while the target is up | yes |
| dead | such a failure when attempts > max_retries while the target is up (a poison message) | yes |
| retry (held) | the answer carried `Retry-After`: the whole target waits until then | no |
| retry (after the next probe) | a retryable failure while the target is down (a failed probe included) | no |
| dead | held or down, and the message's first failed attempt is `retry_window_hours` old | no |

The delay before retry n (n = attempts so far, 1-based) is full jitter:
uniform(0, min(MAX_BACKOFF, backoff_seconds * 2**(n-1))), but never less
than the target's `Retry-After` (delta seconds or HTTP date), which is
capped at MAX_RETRY_AFTER so a hostile header cannot park a message for days.
An outage dead-letters a message only after its retry window
(`DEFAULT_RETRY_WINDOW_HOURS`, at most `MAX_RETRY_WINDOW_HOURS`).
"""

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({408, 425, 429})
MAX_BACKOFF_SECONDS = 300.0
MAX_RETRY_AFTER_SECONDS = 600.0
DEFAULT_RETRY_WINDOW_HOURS = 72.0
MAX_RETRY_WINDOW_HOURS = 720.0


def idempotency_key(*, target_name: str, customer_id: int, version: int, operation: str) -> str:
    """Deterministic per (target, customer, golden version, operation): replays and retries reuse it."""
    digest = hashlib.sha256(f"{target_name}:{customer_id}:{version}:{operation}".encode()).hexdigest()
    return f"cs_{digest[:40]}"


def is_success(status: int) -> bool:
    return 200 <= status < 300


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or 500 <= status < 600


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta seconds or HTTP date), capped; None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    seconds: float | None
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(tz=timezone.utc))).total_seconds()
    return max(0.0, min(seconds, MAX_RETRY_AFTER_SECONDS))


def retry_delay(*, attempts: int, backoff_seconds: float, retry_after: float | None = None,
                rng: random.Random | None = None) -> float:
    """Seconds until the next attempt after `attempts` failed tries."""
    ceiling = min(MAX_BACKOFF_SECONDS, backoff_seconds * (2 ** max(0, attempts - 1)))
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


@dataclass(frozen=True)
class FailureDecision:
    outcome: str  # "retry" or "dead"
    counted: bool  # the attempt counts against max_retries
    window_passed: bool = False


def failure_decision(*, retryable: bool, retry_after: float | None, target_down: bool, attempts: int,
                     max_retries: int, first_failed_at: datetime | None, now: datetime,
                     retry_window_hours: float) -> FailureDecision:
    """Retry or give up after a failed try (`attempts` includes this one); see the table above."""
    if not retryable:
        return FailureDecision("dead", True)
    if retry_after is not None or target_down:
        # The target's condition, not the message's: bounded by the window, not by max_retries.
        started = first_failed_at or now
        if now - started >= timedelta(hours=retry_window_hours):
            return FailureDecision("dead", False, window_passed=True)
        return FailureDecision("retry", False)
    if attempts <= max_retries:
        return FailureDecision("retry", True)
    return FailureDecision("dead", True)
