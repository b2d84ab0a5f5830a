"""Scale-out, proven (issue 7 item 5): gunicorn with 3 workers and THREE django-q2 clusters on
PostgreSQL with the Redis broker, a few thousand signed events (10% duplicates) over several
connections, to the sandbox cdp, crm and webhook targets with rate limits.

Checks: every accepted event processed exactly once (and the golden records equal the
reference model's prediction from the set of events), duplicates answered
`duplicate_ignored`, every target holds the golden state, no target ever moved backwards,
no rate limit exceeded in any sliding 60 s window. Prints the figures.

Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/test TEST_DATABASE_NAME=test_harness \
     .venv/bin/pytest tests/scale -q -s
"""

import os
import random
import time
from collections import Counter

import pytest
from django.conf import settings

from canonical.defaults import DEFAULT_RULES
from canonical.models import Conflict, Customer, ExternalId, MergeLog, SourceValue
from canonical.selectors import customer_snapshot
from custsync_project.schedules import schedules_ensure
from targets.models import DeliveryAttempt, OutboxMessage
from targets.tests.support import make_target, sandbox, target_env  # noqa: F401
from tests.chaos.reference import expected_golden, golden_of, model_rules
from tests.harness import (
    SOURCE_SECRETS, Cluster, EventSender, Gateway, assert_rate_limits, assert_targets_hold_golden, drain, redis_flush,
    redis_reachable, rules_set, sources_create, workload,
)
from webhooks.models import InboxEvent

REDIS_DB = int(os.environ.get("SCALE_REDIS_DB", "11"))
SEED = int(os.environ.get("SCALE_SEED", "7007"))
EVENTS = int(os.environ.get("SCALE_EVENTS", "2730"))  # + 10% duplicates = ~3,000 requests
CUSTOMERS = 500
LIMITS = {"cdp": 1200, "crm": 600, "webhook": 0}  # per minute; 0 = none

pytestmark = [
    pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not redis_reachable(), reason="needs Redis on 127.0.0.1:6379 (the scale-out test uses the Redis broker)"),
]


def test_gateway_and_three_clusters_on_postgres_and_redis(sandbox, target_env, tmp_path):  # noqa: F811
    print(f"\nscale-out: seed={SEED} events={EVENTS} customers={CUSTOMERS} redis db={REDIS_DB}")
    rng = random.Random(SEED)
    redis_flush(REDIS_DB)
    # given: the three sources (hmac x2, Standard Webhooks), the default rules, three targets with limits
    env = sources_create()
    rules_set({name: (strategy, list(sources)) for name, (strategy, sources) in DEFAULT_RULES.items()})
    targets = [make_target(sandbox, kind, rate_limit_per_minute=limit, timeout_seconds=5)
               for kind, limit in LIMITS.items()]
    schedules_ensure(specs=settings.CUSTSYNC_SCHEDULES)  # the production safety net, every minute
    env.update(REDIS_URL=f"redis://127.0.0.1:6379/{REDIS_DB}", Q_WORKERS="2", LOG_FORMAT="text", LOG_LEVEL="WARNING")
    unique, sends = workload(rng=rng, customers=CUSTOMERS, events=EVENTS, duplicate_rate=0.10)

    gateway = Gateway(log_dir=tmp_path, env=env, workers=3, threads=4)
    clusters = [Cluster(name=f"q{i}", log_dir=tmp_path, env=env) for i in range(3)]
    try:
        gateway.start()
        for cluster in clusters:
            cluster.start()
        # when: ~3,000 signed requests over 12 concurrent connections
        sender = EventSender(url=gateway.url, sources=SOURCE_SECRETS, connections=12)
        started = time.monotonic()
        send_seconds = sender.send_all(sends)
        drain_seconds = drain(env=env, timeout=300, sweep_every=20)  # > the 120 s inbox lease of a crashed attempt
        total_seconds = time.monotonic() - started
        assert all(c.alive() for c in clusters), "a cluster died; see its log in " + str(tmp_path)
    finally:
        for cluster in clusters:
            cluster.stop()
        gateway.stop()
        redis_flush(REDIS_DB)

    # then: every request answered 202, each event accepted once, duplicates ignored
    outcomes = sender.outcomes()
    accepted = Counter(r.event_id for r in sender.results if r.outcome == "accepted")
    assert outcomes == {"accepted": len(unique), "duplicate_ignored": len(sends) - len(unique)}, outcomes
    assert set(accepted) == {e["event_id"] for e in unique} and set(accepted.values()) == {1}

    # ... every accepted event processed exactly once: processed, and the golden records are a function
    # of the set of events (an event applied twice or lost would show as a difference)
    statuses = Counter(InboxEvent.objects.values_list("status", flat=True))
    attempts = Counter(InboxEvent.objects.values_list("attempts", flat=True))
    assert statuses == {"processed": len(unique)}, statuses
    expected = expected_golden(unique, model_rules({k: (s, list(v)) for k, (s, v) in DEFAULT_RULES.items()}))
    assert Customer.objects.count() == len(expected)
    assert not MergeLog.objects.exists() and not Conflict.objects.filter(field=Conflict.IDENTITY).exists()
    for key, golden in expected.items():
        customer = ExternalId.objects.get(system="shop", value=key).customer
        assert golden_of(customer_snapshot(customer=customer)) == golden, key
    events_per_customer = Counter(InboxEvent.objects.values_list("customer_id", flat=True))
    for customer in Customer.objects.all():
        assert 1 <= customer.version <= events_per_customer[customer.pk]  # at most one bump per event
    assert not SourceValue.objects.exclude(event_id__in=list(accepted)).exists()

    # ... every target holds the golden state, versions only went up, limits held
    held = assert_targets_hold_golden(sandbox, targets)
    limits = assert_rate_limits(sandbox, targets)
    assert not OutboxMessage.objects.filter(status="dead").exists()

    deliveries = Counter(DeliveryAttempt.objects.values_list("message__target__name", "outcome"))
    effects = {t.name: len(sandbox.state.effects_for(t.kind)) for t in targets}
    print(f"  requests sent {len(sends)} ({len(unique)} unique, {len(sends) - len(unique)} duplicates) "
          f"in {send_seconds:.1f} s = {len(sends) / send_seconds:.0f} req/s accepted over 12 connections")
    print(f"  inbox: {dict(statuses)}, attempts {dict(sorted(attempts.items()))}; customers {len(expected)}")
    print(f"  drain after sending {drain_seconds:.1f} s; first request to drained {total_seconds:.1f} s")
    print(f"  delivery attempts {dict(sorted(deliveries.items()))}; target effects {effects}; held {held}")
    for name, figure in limits.items():
        share = f", {figure['max_in_60s'] / figure['limit']:.0%} of the limit" if figure["limit"] else ""
        print(f"  {name}: {figure['requests']} requests, busiest 60 s window {figure['max_in_60s']}"
              f" (limit {figure['limit'] or 'none'}{share}); limiter waits {figure['limiter_waits']}")
