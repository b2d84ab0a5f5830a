"""The chaos suite (issue 8, "Reliability"): one seeded, bounded scenario with real processes.

2,000 signed events for ~300 customers from three sources (shop and crm sign with
hmac-sha256, support with Standard Webhooks and schema v2), 20% sent twice, shuffled,
occurred_at unrelated to arrival order (ties included); gunicorn; two django-q2
clusters; sandbox targets failing 30% of requests (500, 503, 429 + Retry-After,
timeouts, dropped connections) plus a known set of non-retryable 422s; the crm down
for a stretch; a cluster SIGKILLed three times mid-run and restarted.

After draining: every accepted event processed exactly once; the golden records equal
an independent reference model (`reference.py`); every target holds exactly the golden
state; no target saw an older version after a newer; no rate limit exceeded; the DLQ
holds exactly the messages answered 422, and replaying them converges.

Replay a run: CHAOS_SEED=<printed seed>. Broker: CHAOS_BROKER=redis|orm (default: redis
when reachable, else the ORM broker).
"""

import os
import random
import threading
import time
from collections import Counter

import pytest
from django.conf import settings

from canonical.models import Customer, ExternalId, MergeLog
from canonical.selectors import customer_snapshot
from custsync_project.schedules import schedules_ensure
from targets.models import DeliveryAttempt, OutboxMessage
from targets.tests.support import make_target, sandbox, target_env  # noqa: F401
from tests.harness import (
    SOURCE_SECRETS, Cluster, EventSender, Gateway, assert_rate_limits, assert_targets_hold_golden, drain, manage,
    redis_flush, redis_reachable, rules_set, sources_create, workload,
)
from webhooks.models import InboxEvent

from .reference import CHAOS_RULES, expected_golden, golden_of, model_rules

SEED = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6))
BROKER = os.environ.get("CHAOS_BROKER") or ("redis" if redis_reachable() else "orm")
REDIS_DB = int(os.environ.get("CHAOS_REDIS_DB", "12"))
EVENTS, CUSTOMERS, DUPLICATES = 2000, 300, 0.20
FAULT_RATE = 0.30
LIMITS = {"cdp": 1500, "crm": 1200, "webhook": 0}
KNOWN_DEAD = 6  # 422 answers planted in the webhook target's fault plan
KILLS = 3
TIMEOUT_SECONDS = 1  # target timeout; a "hang" answers after 1.5 s, so the client times out first

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def fault_plan(rng: random.Random, *, length: int, known_dead: int = 0) -> tuple[list[dict], int]:
    """One step per request: 30% retryable faults; `known_dead` 422s planted early. Returns (plan, 422s)."""
    retryable = [({"status": 500}, 8), ({"status": 503}, 8), ({"status": 429, "retry_after": "1"}, 8),
                 ({"hang": 1.5}, 3), ({"close": True}, 3)]
    steps = []
    for _ in range(length):
        if rng.random() < FAULT_RATE:
            step = rng.choices([s for s, _ in retryable], weights=[w for _, w in retryable])[0]
            steps.append(dict(step))
        else:
            steps.append({})
    for position in rng.sample(range(20, 400), known_dead):
        steps[position] = {"status": 422}
    return steps, known_dead


def test_chaos(sandbox, target_env, tmp_path):  # noqa: F811
    print(f"\nchaos: seed={SEED} broker={BROKER} (replay: CHAOS_SEED={SEED} CHAOS_BROKER={BROKER})")
    rng = random.Random(SEED)
    started = time.monotonic()

    # given: sources, the chaos rules, three targets with faults and limits, two clusters
    env = sources_create()
    rules_set(CHAOS_RULES)
    targets = {kind: make_target(sandbox, kind, rate_limit_per_minute=limit, timeout_seconds=TIMEOUT_SECONDS,
                                 max_retries=12, backoff_seconds=0.2)
               for kind, limit in LIMITS.items()}
    planted = 0
    for kind in LIMITS:
        plan, dead = fault_plan(rng, length=20000, known_dead=KNOWN_DEAD if kind == "webhook" else 0)
        sandbox.state.set_faults(kind, plan=plan)
        planted += dead
    schedules_ensure(specs=settings.CUSTSYNC_SCHEDULES)
    # Shorter inbox timings (production: 120 s lease, 60 s sweep age): the same recovery logic, in minutes.
    env.update(INBOX_LEASE_SECONDS="20", INBOX_SWEEP_AFTER_SECONDS="10", Q_WORKERS="2", Q_TIMEOUT="30", Q_RETRY="40",
               INBOX_PUMP_BUDGET_SECONDS="20",  # below Q_TIMEOUT: a pump hands over instead of being killed (custsync_project.W001)
               LOG_FORMAT="text", LOG_LEVEL="WARNING")
    if BROKER == "redis":
        env["REDIS_URL"] = f"redis://127.0.0.1:6379/{REDIS_DB}"
        redis_flush(REDIS_DB)
    else:
        env["REDIS_URL"] = ""
    unique, sends = workload(rng=rng, customers=CUSTOMERS, events=EVENTS, duplicate_rate=DUPLICATES)

    gateway = Gateway(log_dir=tmp_path, env={k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"},
                      workers=2, threads=4)
    clusters = [Cluster(name=f"q{i}", log_dir=tmp_path, env=env) for i in range(2)]
    kills: list[str] = []
    # chaos on a clock (seeded): three SIGKILLs of a whole cluster, each restarted 2 s later, and a crm
    # outage, all while the inbox and the outbox still hold work (sending takes ~10-20 s, draining longer)
    kill_times = [rng.uniform(4, 9), rng.uniform(16, 24), rng.uniform(32, 42)]
    down_time = rng.uniform(6, 12)
    stop = threading.Event()

    def chaos_driver(origin: float):
        events = sorted([(t, "kill", i) for i, t in enumerate(kill_times)] + [(down_time, "down", None)])
        for at, what, number in events:
            if stop.wait(max(0.0, origin + at - time.monotonic())):
                return
            if what == "down":
                sandbox.state.set_faults("crm", down_until=time.time() + 20)
                continue
            victim = clusters[number % len(clusters)]
            victim.kill()
            kills.append(f"{victim.name}@{at:.1f}s")
            if stop.wait(2.0):
                return
            victim.start()

    driver = threading.Thread(target=chaos_driver, args=(0.0,), name="chaos-driver", daemon=True)
    try:
        gateway.start()
        for cluster in clusters:
            cluster.start()
        driver._args = (time.monotonic(),)
        driver.start()
        sender = EventSender(url=gateway.url, sources=SOURCE_SECRETS, connections=8)
        send_seconds = sender.send_all(sends)
        driver.join(timeout=60)
        assert not driver.is_alive() and len(kills) == KILLS, kills
        drain_seconds = drain(env=env, timeout=300, sweep_every=10)

        # the DLQ holds exactly the planted non-retryable answers
        answered_422 = [r for r in sandbox.state.requests_for("webhook") if r["status"] == 422]
        dead = list(OutboxMessage.objects.filter(status="dead"))
        assert len(answered_422) == planted, (len(answered_422), planted)
        assert len(dead) == planted and all(m.target.kind == "webhook" and m.last_status == 422 for m in dead), \
            [(m.target.name, m.last_status, m.last_error[:80]) for m in dead]
        # ... and replaying them converges (the current golden state, or superseded when already delivered)
        replayed = manage(env, "replay_dead_letters", "--target", "webhook")
        replay_seconds = drain(env=env, timeout=120, sweep_every=5)
        assert all(c.alive() for c in clusters), "a cluster died; see its log in " + str(tmp_path)
    finally:
        stop.set()
        if driver.is_alive():
            driver.join(timeout=10)
        for cluster in clusters:
            cluster.stop()
        gateway.stop()
        if BROKER == "redis":
            redis_flush(REDIS_DB)

    # then: every request answered, each event accepted once, duplicates ignored
    outcomes = sender.outcomes()
    assert outcomes == {"accepted": len(unique), "duplicate_ignored": len(sends) - len(unique)}, outcomes
    # ... every accepted event processed exactly once, and the golden records are the model's
    statuses = Counter(InboxEvent.objects.values_list("status", flat=True))
    attempts = Counter(InboxEvent.objects.values_list("attempts", flat=True))
    assert statuses == {"processed": len(unique)}, statuses
    expected = expected_golden(unique, model_rules(CHAOS_RULES))
    assert Customer.objects.count() == len(expected) and not MergeLog.objects.exists()
    mismatches = []
    for key, golden in expected.items():
        actual = golden_of(customer_snapshot(customer=ExternalId.objects.get(system="shop", value=key).customer))
        if actual != golden:
            mismatches.append((key, {f: (actual[f], golden[f]) for f in golden if actual[f] != golden[f]}))
    assert not mismatches, f"{len(mismatches)} golden records differ from the model, e.g. {mismatches[:3]}"
    # ... every target holds exactly the golden state, never moved backwards; limits held; nothing else dead
    held = assert_targets_hold_golden(sandbox, list(targets.values()))
    limits = assert_rate_limits(sandbox, list(targets.values()))
    assert not OutboxMessage.objects.filter(status__in=["dead", "pending", "in_flight"]).exists()

    outcomes_by_target = Counter(DeliveryAttempt.objects.values_list("message__target__name", "outcome"))
    faults = Counter(r["fault"] for r in sandbox.state.requests_for() if r["fault"])
    print(f"  events sent {len(sends)}: accepted {outcomes['accepted']}, duplicates {outcomes['duplicate_ignored']}"
          f" ({send_seconds:.1f} s); processed {statuses['processed']}, inbox attempts {dict(sorted(attempts.items()))}")
    print(f"  customers {len(expected)}; kills {kills}; crm down 20 s; injected faults {dict(faults)}")
    print(f"  delivery attempts {dict(sorted(outcomes_by_target.items()))}")
    print(f"  dead {planted} (all 422, planted), replay: {replayed!r}; targets hold golden {held}; limits {limits}")
    print(f"  drain {drain_seconds:.1f} s, after replay {replay_seconds:.1f} s; whole scenario {time.monotonic() - started:.0f} s")
