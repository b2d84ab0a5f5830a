"""The retry policy and the idempotency key: pure functions, no database.

| outcome | when |
|---|---|
| delivered | 2xx |
| retry | 408, 425, 429, 5xx, timeouts, connection errors |
| dead | any other status (3xx, 4xx), or retries exhausted (attempts > max_retries) |

The delay before retry n (n = attempts so far, 1-based) is full jitter:
uniform(0, min(MAX_BACKOFF, backoff_seconds * 2**(n-1))), but never less
than the target's `Retry-After` (delta seconds or HTTP date), which is
capped at MAX_RETRY_AFTER so a hostile header cannot park a message for days.
"""

import hashlib
import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({408, 425, 429})
MAX_BACKOFF_SECONDS = 300.0
MAX_RETRY_AFTER_SECONDS = 600.0


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
