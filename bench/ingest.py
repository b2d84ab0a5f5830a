"""Ingest: signed webhooks accepted per second through gunicorn on PostgreSQL.

    .venv/bin/python bench/ingest.py [--quick] [--rounds N] [--seconds S]

Per round, in the same run and under the same gunicorn settings (the project's
deploy/gunicorn.conf.py, WEB_CONCURRENCY=4 workers x WEB_THREADS=4 threads,
access log to a file), wrk (a separate process, 2 threads, 16 keep-alive
connections) replays unique pre-signed events against
  1. the ceiling: bench/bare_ingest_app.py (HMAC + one psycopg2 INSERT), and
  2. the real gateway: custsync_project.wsgi, POST /webhooks/customer.
Accepted events/s = rows that reached the table / seconds of load. Printed:
both rates, the ratio (goal >= 0.6), the gateway's rate (goal >= 1000/s), the
peak RSS of a gateway worker (VmHWM, goal < 256 MiB) and CPU ms per request.
Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and Debian's wrk.
The database custsync_bench_ingest is dropped and recreated each run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

DB = "custsync_bench_ingest"
CONNECTIONS = 16
WRK_THREADS = 2
WORKERS = "4"
THREADS = "4"


def write_requests(path, *, n: int, prefix: str, customers: int = 2000) -> None:
    now = int(time.time())
    with open(path, "w") as f:
        for i in range(n):
            body = common.event_body(common.sample_event(i, customers=customers, prefix=prefix))
            headers = common.sign_hmac(body, timestamp=now)
            f.write(f"{headers['X-Timestamp']}\t{headers['X-Signature']}\t{body.decode()}\n")


def wrk(url: str, data: str, seconds: float) -> dict:
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk_signed.lua")
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{int(seconds)}s", "--latency", "-s", script,
           url, "--", data, str(WRK_THREADS)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(rps.group(1)) if rps else 0.0, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "p99": p99.group(1) if p99 else "?", "socket_errors": errors.group(1) if errors else "", "raw": out}


def count(conn, table: str) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        return cur.fetchone()[0]


def run_app(name, app, *, env, table, conn, seconds, n_events, round_no, pythonpath=None) -> dict:
    port = common.free_port()
    log = common.VAR_DIR / f"ingest-{name}.log"
    server = common.gunicorn_start(app, env=env, port=port, log=log, pythonpath=pythonpath)
    try:
        url = f"http://127.0.0.1:{port}"
        common.wait_http(url + "/webhooks/customer", timeout=60)
        warm = common.VAR_DIR / f"ingest-warm-{name}.txt"
        main = common.VAR_DIR / f"ingest-main-{name}.txt"
        write_requests(warm, n=4000, prefix=f"warm{round_no}{name}")
        write_requests(main, n=n_events, prefix=f"r{round_no}{name}")
        wrk(url, str(warm), 2)  # warm-up: imports, connections, caches
        workers = common.children(server.pid)
        cpu = common.CpuTimes(workers)
        before = count(conn, table)
        load_before = common.loadavg()
        profiler = common.pyspy_start(workers[0], seconds=seconds - 1, name=f"ingest-{name}") if workers else None
        result = wrk(url, str(main), seconds)
        common.pyspy_finish(profiler)
        accepted = count(conn, table) - before
        cpu_s = cpu.elapsed()
        result.update(
            accepted=accepted, rate=accepted / seconds, rss=common.rss_peak_mib(workers),
            cpu_ms=1000 * cpu_s / max(accepted, 1), load=load_before, workers=len(workers),
        )
        if accepted >= n_events:
            print(f"  warning: {name} used every pre-signed event; raise n_events", flush=True)
        return result
    finally:
        common.stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 5 s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--json", help="append the summary as JSON to this file")
    args = parser.parse_args()
    rounds, seconds = (1, 5) if args.quick else (args.rounds, args.seconds)
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")
    common.header("ingest")
    common.VAR_DIR.mkdir(parents=True, exist_ok=True)
    env = common.project_setup(DB, WEB_CONCURRENCY=WORKERS, WEB_THREADS=THREADS)
    import psycopg2

    from bare_ingest_app import TABLE_DDL

    conn = psycopg2.connect(env["DATABASE_URL"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(TABLE_DDL)
    n_events = int(seconds * 6000)
    ratios, rates, rss = [], [], []
    try:
        for r in range(1, rounds + 1):
            bare = run_app("bare", "bare_ingest_app:application", env=env, table="bench_bare_inbox", conn=conn,
                           seconds=seconds, n_events=n_events, round_no=r,
                           pythonpath=os.path.dirname(os.path.abspath(__file__)))
            real = run_app("gateway", "custsync_project.wsgi", env=env, table="webhooks_inboxevent", conn=conn,
                           seconds=seconds, n_events=n_events, round_no=r)
            ratio = real["rate"] / bare["rate"] if bare["rate"] else 0.0
            ratios.append(ratio)
            rates.append(real["rate"])
            rss.append(real["rss"])
            for name, res in (("bare", bare), ("gateway", real)):
                print(f"round {r} {name:8s} accepted={res['accepted']:6d} rate={res['rate']:7.0f}/s "
                      f"wrk={res['rps']:7.0f}/s non2xx={res['non2xx']} p99={res['p99']} "
                      f"cpu/req={res['cpu_ms']:.2f} ms peakRSS={res['rss']:.0f} MiB load={res['load']}"
                      + (f" socket_errors={res['socket_errors']}" if res['socket_errors'] else ""), flush=True)
            print(f"round {r} ratio gateway/bare = {ratio:.2f}", flush=True)
    finally:
        conn.close()
        common.database_drop(DB)
    summary = {
        "bench": "ingest", "rounds": rounds, "seconds": seconds, "gateway_rate_median": round(common.median(rates)),
        "ratio_median": round(common.median(ratios), 3), "gateway_peak_rss_mib_max": round(max(rss), 1),
    }
    common.result_report(summary, json_path=args.json, line=(
        "RESULT ingest: gateway {gateway_rate_median}/s (goal >= 1000), ratio {ratio_median:.2f} of the bare "
        "ceiling (goal >= 0.6), peak worker RSS {gateway_peak_rss_mib_max} MiB (goal < 256); load {load_after}"))

if __name__ == "__main__":
    main()
