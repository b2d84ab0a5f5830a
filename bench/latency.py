"""Latency: webhook accepted (202) -> target received, p50 / p99 at a steady 100 events/s.

    .venv/bin/python bench/latency.py [--quick] [--rounds N] [--rate R] [--seconds S]

The full system on a fresh PostgreSQL database (custsync_bench_latency):
gunicorn with the project's config (custsync_project.wsgi), one worker
(`manage.py qcluster`, Q_WORKERS=2, ORM broker unless BENCH_REDIS_URL is
set), and the sandbox targets (`manage.py run_sandbox_targets`). Only the cdp target is
enabled, without a rate limit (a limit below the offered rate would only
measure the queue). A separate load-generator process sends signed upserts
(one per customer, so nothing coalesces) open-loop at --rate for --seconds
and records when each 202 arrived; the sandbox records when each upsert
arrived (its X-Correlation-ID is the event id). Goal: p50 < 300 ms, p99 < 1 s.
Events not delivered within the drain time count as lost in the report.
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

DB = "custsync_bench_latency"


def _prepare(env: dict, sandbox_url: str) -> None:
    common.django_setup(env)
    from targets.models import Target

    Target.objects.exclude(name="cdp").update(enabled=False)
    Target.objects.filter(name="cdp").update(base_url=f"{sandbox_url}/cdp", rate_limit_per_minute=0, enabled=True,
                                             timeout_seconds=5)


def _load(url: str, rate: float, seconds: float, prefix: str, out) -> None:
    """Open loop: event i is due at start + i / rate; 4 threads with keep-alive sessions."""
    import threading

    import requests

    n = int(rate * seconds)
    start = time.time() + 0.5
    accepted: dict[str, float] = {}
    errors = []
    lock = threading.Lock()

    def sender(k: int) -> None:
        session = requests.Session()
        for i in range(k, n, 4):
            due = start + i / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            body = common.event_body(common.sample_event(i, customers=n, prefix=prefix))
            headers = dict(common.sign_hmac(body), **{"Content-Type": "application/json"})
            try:
                r = session.post(url, data=body, headers=headers, timeout=10)
                t = time.time()
                with lock:
                    if r.status_code == 202:
                        accepted[f"{prefix}_{i:08d}"] = t
                    else:
                        errors.append(r.status_code)
            except requests.RequestException as exc:
                with lock:
                    errors.append(type(exc).__name__)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    out.put({"accepted": accepted, "errors": errors[:20], "n_errors": len(errors),
             "send_seconds": time.time() - start})


def _received(sandbox_url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{sandbox_url}/_sandbox/requests?system=cdp", timeout=30) as r:
        data = json.loads(r.read())["requests"]
    first: dict[str, float] = {}
    for entry in data:
        cid = entry.get("correlation_id")
        if cid and entry.get("status") in (200, 201, 204) and cid not in first:
            first[cid] = entry["t"]
    return first


def _inbox_latency(url: str) -> dict:
    """Where the time goes: stored (received_at) -> golden record + outbox committed (processed_at)."""
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1000 * extract(epoch FROM processed_at - received_at) FROM webhooks_inboxevent "
                        "WHERE processed_at IS NOT NULL")
            values = [float(row[0]) for row in cur.fetchall()]
    finally:
        conn.close()
    return {"inbox_p50": pct(values, 50), "inbox_p99": pct(values, 99)}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run_round(args, r: int) -> dict:
    env = common.project_setup(DB, Q_WORKERS="2")
    sandbox_port, web_port = common.free_port(), common.free_port()
    sandbox_url, web_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{web_port}"
    procs = []
    try:
        procs.append(common.start([common.PYTHON, "manage.py", "run_sandbox_targets", "--port", str(sandbox_port)], env=env,
                                  log=common.VAR_DIR / "latency-sandbox.log"))
        common.wait_http(sandbox_url + "/_sandbox/state")
        p = multiprocessing.Process(target=_prepare, args=(env, sandbox_url))
        p.start()
        p.join(120)
        procs.append(common.gunicorn_start("custsync_project.wsgi", env=env, port=web_port,
                                           log=common.VAR_DIR / "latency-gunicorn.log"))
        procs.append(common.start([common.PYTHON, "manage.py", "qcluster"], env=env,
                                  log=common.VAR_DIR / "latency-worker.log"))
        common.wait_http(web_url + "/healthz", timeout=60)
        time.sleep(3)  # let the cluster start
        load = common.loadavg()
        q = multiprocessing.Queue()
        lg = multiprocessing.Process(target=_load, args=(web_url + "/webhooks/customer", args.rate, args.seconds,
                                                         f"lat{r}", q))
        lg.start()
        sent = q.get(timeout=args.seconds + 120)
        lg.join(10)
        accepted = sent["accepted"]
        deadline = time.monotonic() + args.drain
        received = {}
        while time.monotonic() < deadline:
            received = _received(sandbox_url)
            if all(k in received for k in accepted):
                break
            time.sleep(1)
        rss = common.rss_peak_mib(common.children(procs[1].pid))
        inbox = _inbox_latency(env["DATABASE_URL"])
    finally:
        for proc in reversed(procs):
            common.stop(proc)
    lat = [(received[k] - t) * 1000 for k, t in accepted.items() if k in received]
    lost = len(accepted) - len(lat)
    res = {"p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat) if lat else float("nan"),
           "accepted": len(accepted), "delivered": len(lat), "lost": lost, "errors": sent["n_errors"],
           "achieved_rate": len(accepted) / sent["send_seconds"], "rss": rss, **inbox}
    print(f"round {r}: sent at {res['achieved_rate']:.0f}/s accepted={res['accepted']} errors={res['errors']} "
          f"delivered={res['delivered']} not-delivered-within-{args.drain:.0f}s={lost} p50={res['p50']:.0f} ms "
          f"p99={res['p99']:.0f} ms max={res['max']:.0f} ms (of which inbox stored->processed p50={inbox['inbox_p50']:.0f} "
          f"p99={inbox['inbox_p99']:.0f} ms) gateway peakRSS={rss:.0f} MiB load={load}", flush=True)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 10 s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--drain", type=float, default=60.0, help="max seconds to wait for deliveries after sending")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 10.0
    results = common.rounds_run("latency", db=DB, rounds=args.rounds, one_round=lambda r: run_round(args, r))
    summary = {"bench": "latency", "rate": args.rate, "p50_median_ms": round(common.median([x["p50"] for x in results])),
               "p99_median_ms": round(common.median([x["p99"] for x in results])),
               "lost_total": sum(x["lost"] for x in results)}
    common.result_report(summary, json_path=args.json, line=(
        "RESULT latency at {rate:.0f}/s: p50 {p50_median_ms} ms (goal < 300), p99 {p99_median_ms} ms "
        "(goal < 1000), not delivered within the drain: {lost_total}; load {load_after}"))

if __name__ == "__main__":
    main()
