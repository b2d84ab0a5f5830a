"""Pipeline: inbox events per second to golden record + outbox, two workers, PostgreSQL.

    .venv/bin/python bench/pipeline.py [--quick] [--rounds N] [--events N] [--customers N] [--broker orm|redis]

Per round: a fresh database (custsync_bench_pipeline, dropped and recreated),
the dev sync config (targets cdp, crm, n8n enabled), N upserts pre-loaded into
the inbox (default 5,000 for 2,000 customers) and two inbox-pump wake-ups
enqueued (the gateway sends one per accepted burst), then `manage.py qcluster` with Q_WORKERS=2
and Q_CLUSTER_NAME=custsync (the main cluster's two worker processes only) is started and timed until every event is processed.
The targets' pump leases are held by the bench during the run (as when a
pump is already running), so delivery does not compete for the two workers:
this measures inbox -> golden record + outbox only.

Rate = events / (last processed_at - first processed_at). The ceiling, in
the same run: two processes doing the same number of row writes with plain
psycopg2 (one transaction per event, the same writes per event, measured
from pg_stat_user_tables during the pipeline run). Goal: >= 1,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

DB = "custsync_bench_pipeline"


def table_writes(conn) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables")
        return dict(cur.fetchall())


def preload(env: dict, *, events: int, customers: int) -> None:
    """Runs in a child process (Django set up against the bench database)."""
    common.django_setup(env)
    from webhooks.processing import inbox_pump_kick

    common.inbox_preload(events=events, customers=customers)
    # As the gateway does: wake-ups, not one task per event (one per worker, so both start at once).
    for _ in range(2):
        inbox_pump_kick(immediately=True)


def _psycopg2_worker(url: str, events: int, writes_per_event: float, seed: int) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    total = 0.0
    with conn.cursor() as cur:
        for i in range(events):
            total += writes_per_event
            k = int(total) - int(total - writes_per_event)
            for j in range(k):
                cur.execute("INSERT INTO bench_rows (worker, n, payload) VALUES (%s, %s, %s)",
                            (seed, i * 100 + j, '{"email": "person@example.com", "first_name": "Max"}'))
            conn.commit()
    conn.close()


def ceiling(url: str, *, events: int, writes_per_event: float, processes: int = 2) -> float:
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_rows (id bigserial PRIMARY KEY, worker int, n int, "
                    "payload jsonb, created_at timestamptz DEFAULT now())")
    conn.close()
    per = events // processes
    procs = [multiprocessing.Process(target=_psycopg2_worker, args=(url, per, writes_per_event, s)) for s in range(processes)]
    started = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    return per * processes / (time.monotonic() - started)


def run_round(args, r: int) -> dict:
    import psycopg2

    extra = {"Q_WORKERS": "2"}
    if args.broker == "redis":
        extra["REDIS_URL"] = "redis://127.0.0.1:6379/15"
    env = common.project_setup(DB, **extra)
    if args.broker == "redis":
        import redis

        redis.Redis.from_url(extra["REDIS_URL"]).flushdb()
    p = multiprocessing.Process(target=preload, args=(env,), kwargs=dict(events=args.events, customers=args.customers))
    p.start()
    p.join(timeout=600)
    if p.exitcode != 0:
        raise SystemExit("preload failed")
    conn = psycopg2.connect(env["DATABASE_URL"])
    conn.autocommit = True
    time.sleep(1.5)  # let the preload's statistics reach pg_stat
    before = table_writes(conn)
    load = common.loadavg()
    cluster = common.start([common.PYTHON, "manage.py", "qcluster"], env={**env, "Q_CLUSTER_NAME": "custsync"},
                           log=common.VAR_DIR / f"pipeline-qcluster-{r}.log")
    started = time.monotonic()
    remaining = args.events
    try:
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM webhooks_inboxevent WHERE status IN ('received', 'processing')")
                remaining = cur.fetchone()[0]
            if remaining == 0:
                break
            time.sleep(0.2)
        wall = time.monotonic() - started
        workers = common.children(common.children(cluster.pid)[0]) if common.children(cluster.pid) else []
        rss = common.rss_peak_mib(workers + common.children(cluster.pid) + [cluster.pid])
    finally:
        common.stop(cluster)
    time.sleep(1.5)
    after = table_writes(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT status, count(*), min(processed_at), max(processed_at) FROM webhooks_inboxevent GROUP BY status")
        states = {row[0]: row[1:] for row in cur.fetchall()}
        cur.execute("SELECT count(*) FROM canonical_customer")
        customers = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM targets_outboxmessage")
        outbox = cur.fetchone()[0]
    processed = states.get("processed", (0, None, None))
    span = (processed[2] - processed[1]).total_seconds() if processed[0] > 1 else float("nan")
    rate = (processed[0] - 1) / span if span else 0.0
    writes = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    writes = {k: v for k, v in writes.items() if v}
    total_writes = sum(writes.values())
    per_event = total_writes / max(processed[0], 1)
    ceil = ceiling(env["DATABASE_URL"], events=args.events, writes_per_event=per_event)
    conn.close()
    failed = states.get("failed", (0,))[0]
    print(f"round {r}: processed={processed[0]} failed={failed} remaining={remaining} customers={customers} "
          f"outbox={outbox} span={span:.1f}s wall={wall:.1f}s rate={rate:.0f}/s "
          f"writes/event={per_event:.1f} psycopg2 ceiling={ceil:.0f}/s ratio={rate / ceil:.2f} "
          f"worker peakRSS={rss:.0f} MiB load={load}", flush=True)
    if args.verbose:
        print("  row writes by table:", json.dumps(dict(sorted(writes.items(), key=lambda kv: -kv[1]))))
    return {"rate": rate, "ceiling": ceil, "ratio": rate / ceil, "per_event": per_event, "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 2,000 events")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--broker", choices=["orm", "redis"], default="orm")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.events, args.customers = 1, 2000, 800
    results = common.rounds_run(f"pipeline (broker {args.broker})", db=DB, rounds=args.rounds,
                                one_round=lambda r: run_round(args, r))
    summary = {"bench": "pipeline", "broker": args.broker, "events": args.events,
               "rate_median": round(common.median([x["rate"] for x in results])),
               "ratio_median": round(common.median([x["ratio"] for x in results]), 3),
               "writes_per_event": round(common.median([x["per_event"] for x in results]), 1)}
    common.result_report(summary, json_path=args.json, line=(
        "RESULT pipeline: {rate_median} events/s (goal >= 1000), ratio {ratio_median:.2f} of plain psycopg2 "
        "doing the same {writes_per_event} row writes/event; load {load_after}"))

if __name__ == "__main__":
    main()
