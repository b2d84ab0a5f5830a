"""A per-target rate limit shared by every worker process: GCRA in one database row.

`rate_tat` is the earliest time (unix seconds) the next request may start.
Taking a slot is ONE conditional UPDATE (`WHERE rate_tat <= now`), which is
atomic on SQLite and PostgreSQL alike, so any number of processes together
stay under the limit. Slots are spaced `(60 + SAFETY_SECONDS) / limit` apart
with no burst, so every 60 s window holds at most `limit` requests even with
a little network jitter between the slot and the request's arrival; a
backlog gets ~98% of the limit.
"""

import time

from django.db.models import F

from .models import TargetRuntime

SAFETY_SECONDS = 1.0


def slot_interval(per_minute: int) -> float:
    return (60.0 + SAFETY_SECONDS) / per_minute


def rate_limit_acquire(*, target_id: int, per_minute: int) -> float:
    """0.0 when a slot was taken, else the seconds until one may be free."""
    if per_minute <= 0:
        return 0.0
    for _ in range(2):
        now = time.time()
        taken = TargetRuntime.objects.filter(target_id=target_id, rate_tat__lte=now).update(
            rate_tat=now + slot_interval(per_minute)
        )
        if taken:
            return 0.0
        tat = TargetRuntime.objects.filter(target_id=target_id).values_list("rate_tat", flat=True).first()
        if tat is not None:
            return max(0.001, tat - now)
        TargetRuntime.objects.get_or_create(target_id=target_id)
    return 0.001


def rate_limit_wait_record(*, target_id: int) -> None:
    """Count a wait for a slot (read by the metrics later)."""
    TargetRuntime.objects.filter(target_id=target_id).update(rate_limit_waits=F("rate_limit_waits") + 1)
