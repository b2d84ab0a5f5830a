"""The circuit breaker's pure policy (targets/health.py) and the message-side decision (delivery.failure_decision)."""

import random
from datetime import datetime, timedelta, timezone

import pytest

from targets import health
from targets.delivery import failure_decision
from targets.health import UP, Action, Health, gate, on_answer, on_failure

SEED = 1313
T0 = datetime(2026, 1, 14, 10, 0, tzinfo=timezone.utc)


def fail(state, *, at=0.0, message=1, retry_after=None, probe=False, rng=None, error="503 injected"):
    return on_failure(state, now=T0 + timedelta(seconds=at), message_id=message, error=error,
                      retry_after=retry_after, probe=probe, rng=rng or random.Random(SEED))


def test_failures_across_messages_mark_the_target_down_with_a_first_probe_within_a_second():
    state = UP
    for n in range(health.DOWN_AFTER_FAILURES - 1):
        state = fail(state, message=n % 3)
        assert not state.down
    state = fail(state, at=2, message=7, error="connection error: ConnectionError")
    assert state.down and state.down_since == T0 + timedelta(seconds=2)
    assert state.error == "connection error: ConnectionError"
    assert state.probe_gap == health.FIRST_PROBE_GAP
    assert T0 + timedelta(seconds=2.5) <= state.next_probe_at <= T0 + timedelta(seconds=3)


def test_one_message_failing_again_and_again_is_not_an_outage():
    state = UP
    for _ in range(50):
        state = fail(state, message=42)
    assert not state.down and state.failing_messages == 1


def test_an_answer_resets_the_streak_so_a_poison_message_among_successes_never_trips_it():
    state = UP
    for n in range(100):
        state = fail(state, message=42)  # the poison message
        state = on_answer(state)  # another message delivered
    assert state == UP


def test_failed_probes_double_the_gap_up_to_the_cap_with_equal_jitter():
    print(f"seed={SEED}")
    rng = random.Random(SEED)
    state = UP
    for n in range(health.DOWN_AFTER_FAILURES):
        state = fail(state, message=n, rng=rng)
    gaps, waits, at = [], [], 0.0
    for _ in range(15):
        at = (state.next_probe_at - T0).total_seconds()
        state = fail(state, at=at, message=99, probe=True, rng=rng)
        gaps.append(state.probe_gap)
        waits.append((state.next_probe_at - T0).total_seconds() - at)
    assert gaps[:9] == [2, 4, 8, 16, 32, 64, 128, 256, 300] and set(gaps[9:]) == {300}
    assert all(g / 2 <= w <= g for g, w in zip(gaps, waits))
    assert waits == sorted(waits[:8]) + waits[8:]  # equal jitter: each range starts where the last ended
    assert len({round(w, 3) for w in waits[8:]}) > 1  # jittered, not a fixed beat
    assert state.down_since == T0  # down since the fall, not since the last probe


def test_the_same_seed_gives_the_same_probe_times():
    def run():
        rng = random.Random(SEED)
        state = UP
        for n in range(health.DOWN_AFTER_FAILURES):
            state = fail(state, message=n, rng=rng)
        return [state := fail(state, at=i, message=1, probe=True, rng=rng) for i in range(5)]
    assert run() == run()


def test_a_late_request_of_before_the_fall_does_not_grow_the_gap():
    state = UP
    for n in range(health.DOWN_AFTER_FAILURES):
        state = fail(state, message=n)
    after = fail(state, at=0.1, message=3, probe=False, error="timeout after 2 s")
    assert (after.probe_gap, after.next_probe_at, after.error) == (state.probe_gap, state.next_probe_at, "timeout after 2 s")


def test_a_successful_probe_brings_the_target_up():
    state = UP
    for n in range(health.DOWN_AFTER_FAILURES + 3):
        state = fail(state, message=n, probe=n >= health.DOWN_AFTER_FAILURES)
    assert on_answer(state) == UP


def test_retry_after_holds_the_whole_target_and_is_not_an_outage():
    state = fail(UP, retry_after=2.0, error="429")
    assert not state.down and state.failures == 0
    assert state.retry_after_until == T0 + timedelta(seconds=2)
    assert gate(state, now=T0 + timedelta(seconds=0.5), probe_in_flight=False) == health.Gate(Action.WAIT, 1.5)
    assert gate(state, now=T0 + timedelta(seconds=2), probe_in_flight=False).action == Action.OPEN
    # a shorter Retry-After later never shortens the hold; an answer keeps it
    assert fail(state, at=0.5, retry_after=0.1).retry_after_until == state.retry_after_until
    assert on_answer(fail(state, message=2)).retry_after_until == state.retry_after_until


def test_while_down_the_next_probe_is_not_before_a_retry_after():
    state = UP
    for n in range(health.DOWN_AFTER_FAILURES):
        state = fail(state, message=n)
    state = fail(state, at=1, message=1, probe=True, retry_after=60)
    assert state.next_probe_at == T0 + timedelta(seconds=61)


def test_gate():
    down = Health(down=True, down_since=T0, probe_gap=4, next_probe_at=T0 + timedelta(seconds=3))
    assert gate(UP, now=T0, probe_in_flight=False).action == Action.OPEN
    assert gate(down, now=T0, probe_in_flight=False) == health.Gate(Action.WAIT, 3)
    later = T0 + timedelta(seconds=3)
    assert gate(down, now=later, probe_in_flight=False).action == Action.PROBE
    assert gate(down, now=later, probe_in_flight=True).action == Action.WAIT  # one probe at a time


NOW = T0


@pytest.mark.parametrize("kwargs,expected", [
    # permanent: dead at once, whatever the health
    (dict(retryable=False, retry_after=None, target_down=True, attempts=1), ("dead", True, False)),
    # up: the message's own counts
    (dict(retryable=True, retry_after=None, target_down=False, attempts=6), ("retry", True, False)),
    (dict(retryable=True, retry_after=None, target_down=False, attempts=7), ("dead", True, False)),
    # down or held: attempts kept, however many
    (dict(retryable=True, retry_after=None, target_down=True, attempts=50), ("retry", False, False)),
    (dict(retryable=True, retry_after=2.0, target_down=False, attempts=50), ("retry", False, False)),
    # ... until the window since the first failure has passed
    (dict(retryable=True, retry_after=None, target_down=True, attempts=2, first_failed_at=NOW - timedelta(hours=72)),
     ("dead", False, True)),
    (dict(retryable=True, retry_after=None, target_down=True, attempts=2,
          first_failed_at=NOW - timedelta(hours=71, minutes=59)), ("retry", False, False)),
])
def test_failure_decision(kwargs, expected):
    values = dict(max_retries=6, first_failed_at=None, now=NOW, retry_window_hours=72)
    values.update(kwargs)
    decision = failure_decision(**values)
    assert (decision.outcome, decision.counted, decision.window_passed) == expected
