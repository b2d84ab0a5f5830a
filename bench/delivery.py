"""Delivery: outbox messages per second to a fast local target, and rate-limit accuracy.

    .venv/bin/python bench/delivery.py [--quick] [--rounds N] [--messages N] [--limit PER_MINUTE]

Per round, on a fresh database (custsync_bench_delivery) with the sandbox
targets (`manage.py run_sandbox_targets`, a separate process on 127.0.0.1):
  1. unlimited: N pending messages for the cdp target (rate limit 0); one
     pump process (`targets.services.target_pump`, as a worker runs it) until
     all are delivered. Ceiling in the same run: one process POSTing the same
     number of upserts to the same sandbox with requests.Session (keep-alive).
  2. limited: the cdp target limited to --limit per minute (default 1,200 =
     20/s), a backlog larger than the window can drain, two processes running
     `outbox_deliver_due` at once (the limit is shared); the sandbox's own
     receive timestamps give the rate, as a fraction of the limit (goal
     0.95-1.00, never above).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

DB = "custsync_bench_delivery"


def _prepare(env: dict, sandbox_url: str, messages: int, limit: int) -> None:
    common.django_setup(env)
    from django.utils import timezone

    from canonical.models import Customer
    from targets.models import OutboxMessage, Target, TargetRuntime

    Target.objects.exclude(name="cdp").update(enabled=False)
    Target.objects.filter(name="cdp").update(base_url=f"{sandbox_url}/cdp", rate_limit_per_minute=limit, enabled=True,
                                             timeout_seconds=5)
    target = Target.objects.get(name="cdp")
    TargetRuntime.objects.get_or_create(target_id=target.pk)
    TargetRuntime.objects.update(pump_owner="", pump_lease_until=None, rate_tat=0)
    OutboxMessage.objects.all().delete()
    start = Customer.objects.count()
    customers = Customer.objects.bulk_create([
        Customer(version=1, email=f"p{start + i}@example.com", first_name="Max", last_name=f"M{start + i}",
                 last_source="shop") for i in range(messages)
    ])
    now = timezone.now()
    OutboxMessage.objects.bulk_create([
        OutboxMessage(target=target, customer=c, version=1, operation="upsert", correlation_id=f"bench-{c.pk}",
                      next_attempt_at=now) for c in customers
    ], batch_size=1000)


def _pump(env: dict, seconds: float) -> None:
    common.django_setup(env)
    from targets.models import Target
    from targets.services import target_pump

    target_pump(target_id=Target.objects.get(name="cdp").pk, budget_seconds=seconds)


def _deliver(env: dict, seconds: float, seed: int) -> None:
    common.django_setup(env)
    import random

    from targets.models import Target
    from targets.services import outbox_deliver_due, worker_id

    outbox_deliver_due(target_id=Target.objects.get(name="cdp").pk, owner=worker_id(),
                       deadline=time.monotonic() + seconds, wait_for_due=True, rng=random.Random(seed))


def _ceiling(sandbox_url: str, n: int, out) -> None:
    import requests

    session = requests.Session()
    headers = {"Authorization": f"Bearer {common.SECRETS['CDP_TOKEN']}", "Content-Type": "application/json"}
    started = time.monotonic()
    for i in range(n):
        body = {"id": 900_000 + i, "email": f"c{i}@example.com", "first_name": "Max", "last_name": f"M{i}",
                "meta": {"version": 1}}
        r = session.post(f"{sandbox_url}/cdp/customers/upsert", json=body, timeout=5,
                         headers=dict(headers, **{"Idempotency-Key": f"ceiling-{i}"}))
        r.raise_for_status()
    out.put(n / (time.monotonic() - started))


def sandbox_requests(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/_sandbox/requests?system=cdp", timeout=30) as r:
        data = json.loads(r.read())
    return data if isinstance(data, list) else data.get("requests", [])


def sandbox_reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/_sandbox/reset", data=b"{}", method="POST"), timeout=10).read()


def delivered(env: dict) -> int:
    import psycopg2

    with psycopg2.connect(env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM targets_outboxmessage WHERE status = 'delivered'")
        return cur.fetchone()[0]


def run(target, *args):
    p = multiprocessing.Process(target=target, args=args)
    p.start()
    return p


def run_round(args, r: int) -> dict:
    env = common.project_setup(DB)
    port = common.free_port()
    sandbox = common.start([common.PYTHON, "manage.py", "run_sandbox_targets", "--port", str(port)], env=env,
                           log=common.VAR_DIR / "delivery-sandbox.log")
    url = f"http://127.0.0.1:{port}"
    try:
        common.wait_http(url + "/_sandbox/state")
        # 1. unlimited
        p = run(_prepare, env, url, args.messages, 0)
        p.join(300)
        sandbox_reset(url)
        load = common.loadavg()
        started = time.monotonic()
        p = run(_pump, env, args.timeout)
        p.join(args.timeout + 30)
        elapsed = time.monotonic() - started
        done = delivered(env)
        reqs = sandbox_requests(url)
        ts = sorted(e["t"] for e in reqs)
        rate = (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) > 1 else 0.0
        q = multiprocessing.Queue()
        p = run(_ceiling, url, args.messages, q)
        p.join(300)
        ceiling = q.get(timeout=5)
        # 2. limited, two processes sharing the limit
        backlog = int(args.limit / 60 * args.window * 1.5) + 10
        p = run(_prepare, env, url, backlog, args.limit)
        p.join(300)
        sandbox_reset(url)
        t0 = time.time()
        procs = [run(_deliver, env, args.window, s) for s in (1, 2)]
        for p in procs:
            p.join(args.window + 60)
        received = sorted(e["t"] for e in sandbox_requests(url) if e["t"] >= t0)
        limited_rate = (len(received) - 1) / (received[-1] - received[0]) if len(received) > 1 else 0.0
        # the worst 10-second window: the limit must hold over any window, not just on average
        worst = 0
        j = 0
        for i in range(len(received)):
            while received[i] - received[j] > 10.0:
                j += 1
            worst = max(worst, i - j + 1)
        fraction = limited_rate / (args.limit / 60)
    finally:
        common.stop(sandbox)
    print(f"round {r}: unlimited delivered={done}/{args.messages} rate={rate:.0f}/s (pump wall {elapsed:.1f}s) "
          f"ceiling(requests loop)={ceiling:.0f}/s ratio={rate / ceiling:.2f} | limited {args.limit}/min: "
          f"received={len(received)} rate={limited_rate:.2f}/s = {fraction:.3f} of the limit, "
          f"worst 10 s window {worst} (limit {args.limit / 6:.0f}) load={load}", flush=True)
    return {"rate": rate, "ceiling": ceiling, "ratio": rate / ceiling, "fraction": fraction,
            "worst10": worst, "limit10": args.limit / 6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 500 messages, 10 s window")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=1200, help="per minute for the limited run")
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.messages, args.window = 1, 500, 10.0
    results = common.rounds_run("delivery", db=DB, rounds=args.rounds, one_round=lambda r: run_round(args, r))
    summary = {"bench": "delivery", "rate_median": round(common.median([x["rate"] for x in results])),
               "ratio_median": round(common.median([x["ratio"] for x in results]), 3),
               "limit_fraction_median": round(common.median([x["fraction"] for x in results]), 3),
               "limit_fraction_max": round(max(x["fraction"] for x in results), 3)}
    common.result_report(summary, json_path=args.json, line=(
        "RESULT delivery: {rate_median} msg/s unlimited (ratio {ratio_median:.2f} of a plain requests loop); "
        "limited: {limit_fraction_median:.3f} of the limit (max {limit_fraction_max:.3f}; goal 0.95-1.00); "
        "load {load_after}"))

if __name__ == "__main__":
    main()
