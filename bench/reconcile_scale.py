"""Benchmark: `manage.py reconcile` against two sandbox targets (cdp, crm) at 10k and 100k customers.

    .venv/bin/python bench/reconcile_scale.py                       # SQLite, N = 10,000 and 100,000
    .venv/bin/python bench/reconcile_scale.py --database-url postgres://postgres@127.0.0.1:5432/custsync_bench

For each N it creates a fresh database (SQLite file, or the named PostgreSQL
database dropped and created again), seeds N golden records in bulk, starts
an in-process sandbox holding both targets' copies with known differences
(~1 % of each: deleted in target, never delivered, edited in target,
delivery behind, erased-but-still-there, unknown records), writes the
matching `DeliveredState` rows, and then runs in separate processes, each
measured alone (wall time; peak RSS = the process's VmHWM, polled):

1. baseline "idle": `manage.py check` (the interpreter + Django + the apps);
2. baseline "stream": both listings paged through the adapters, nothing compared;
3. `manage.py reconcile --json` for both targets.

It checks the reported counts against what it seeded and prints one JSON
object per N plus a table. The seed of the random choices is printed.
"""

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

PAGE_SIZE = 1000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--database-url", default="sqlite:////tmp/custsync_bench_reconcile.sqlite3")
    parser.add_argument("--pct", type=float, default=1.0, help="Percent of customers per seeded difference.")
    parser.add_argument("--seed", type=int, default=20260115)
    return parser.parse_args()


def fresh_database(url: str) -> None:
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return
    import psycopg2
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = psycopg2.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username,
                             password=parts.password, dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def child_env(url: str, creds: dict) -> dict:
    env = dict(os.environ, DATABASE_URL=url, DJANGO_SETTINGS_MODULE="custsync_project.settings", LOG_LEVEL="WARNING",
               PYTHONUNBUFFERED="1", **creds)
    env.pop("TEST_DATABASE_NAME", None)
    return env


def _hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


def _cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


def measure(argv: list[str], env: dict, log: Path) -> dict:
    """Run one process; wall time and its own peak RSS.

    Peak RSS is the kernel's high-water mark of the exec'd image (`VmHWM` in
    /proc/<pid>/status, reset by exec), polled every 20 ms until the process
    exits (bounded by a 1-hour limit). `ru_maxrss` from wait4 is not used: it
    includes the benchmark driver's own memory at fork time.
    """
    peak, cpu = 0, 0.0
    with open(log, "w") as out:
        started = time.monotonic()
        process = subprocess.Popen(argv, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = started + 3600
        while process.poll() is None and time.monotonic() < deadline:
            peak = max(peak, _hwm_kib(process.pid) or 0)
            cpu = max(cpu, _cpu_seconds(process.pid) or 0.0)
            time.sleep(0.02)
        if process.poll() is None:
            process.kill()
        process.wait()
        wall = time.monotonic() - started
    return {"seconds": round(wall, 2), "peak_rss_mib": round(peak / 1024, 1), "cpu_seconds": round(cpu, 1),
            "exit": process.returncode}


def seed(n: int, *, pct: float, rng: random.Random, sandbox_url: str, box) -> dict:
    """Golden records in bulk, both targets' stores and DeliveredState rows; returns the expected counts."""
    from django.db import connection
    from django.utils import timezone

    from canonical.models import Customer, ExternalId
    from targets.adapters import adapter_for
    from targets.delivery import idempotency_key
    from targets.models import DeliveredState, Target
    from targets.services import target_mappings_ensure_defaults, target_runtime_ensure

    now = timezone.now()
    targets = {}
    for kind, auth, refs in (("cdp", "bearer", {"token": "${CDP_TOKEN}"}), ("crm", "api_key", {"api_key": "${CRM_API_KEY}"})):
        target = Target.objects.create(name=kind, kind=kind, base_url=f"{sandbox_url}/{kind}", auth_kind=auth,
                                       secret_refs=refs, timeout_seconds=60, rate_limit_per_minute=0)
        target_mappings_ensure_defaults(target=target)
        target_runtime_ensure(target_id=target.pk)
        targets[kind] = target
    adapters = {kind: adapter_for(t) for kind, t in targets.items()}

    k = max(1, int(n * pct / 100))
    ids = list(range(1, n + 1))
    picks = rng.sample(ids, 6 * k)
    groups = {name: set(picks[i * k:(i + 1) * k]) for i, name in enumerate(
        ["deleted_there", "never", "edited", "behind", "erased", "never_drift"])}

    batch = 5000
    for start in range(0, n, batch):
        customers, external = [], []
        for cid in ids[start:start + batch]:
            erased = cid in groups["erased"]
            customers.append(Customer(
                id=cid, version=3 if cid in groups["behind"] else (2 if erased else 1),
                email="" if erased else f"person{cid}@example.com",
                phone="" if erased else f"+4915{cid:09d}",
                first_name="" if erased else ("Renamed" if cid in groups["behind"] else f"First{cid}"),
                last_name="" if erased else f"Last{cid}", marketing_opt_in=None if erased else bool(cid % 2),
                last_source="shop", deleted_at=now if erased else None,
            ))
            if not erased:
                external.append(ExternalId(customer_id=cid, system="shop", value=str(100_000_000 + cid)))
        Customer.objects.bulk_create(customers)
        ExternalId.objects.bulk_create(external)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval(pg_get_serial_sequence('canonical_customer', 'id'), %s)", [n])

    expected = {}
    updated = now.isoformat().replace("+00:00", "Z")
    for kind, adapter in adapters.items():
        store = box.state.stores[kind]
        states = []
        for cid in ids:
            if cid in groups["erased"]:
                delivered = {"id": cid, "version": 1, "external_ids": {"shop": str(100_000_000 + cid)},
                             "email": f"person{cid}@example.com", "phone": f"+4915{cid:09d}",
                             "first_name": f"First{cid}", "last_name": f"Last{cid}",
                             "marketing_opt_in": bool(cid % 2), "updated_at": updated, "last_source": "shop"}
                store[cid] = adapter.build_body(delivered)
                states.append(DeliveredState(target_id=targets[kind].pk, customer_id=cid, version=1, operation="upsert",
                                             body=store[cid], idempotency_key="bench", delivered_at=now))
                continue
            snapshot = {"id": cid, "version": 1, "external_ids": {"shop": str(100_000_000 + cid)},
                        "email": f"person{cid}@example.com", "phone": f"+4915{cid:09d}",
                        "first_name": f"First{cid}", "last_name": f"Last{cid}", "marketing_opt_in": bool(cid % 2),
                        "updated_at": updated, "last_source": "shop"}
            body = adapter.build_body(snapshot)  # version 1: what was delivered
            if cid in groups["never"]:
                continue
            if cid in groups["never_drift"]:
                record = json.loads(json.dumps(body))
                record["email"] = f"old{cid}@example.org"
                store[cid] = record
                continue
            states.append(DeliveredState(target_id=targets[kind].pk, customer_id=cid, version=1, operation="upsert",
                                         body=body, idempotency_key=idempotency_key(
                                             target_name=kind, customer_id=cid, version=1, operation="upsert"),
                                         delivered_at=now))
            if cid in groups["deleted_there"]:
                continue
            record = json.loads(json.dumps(body))
            if cid in groups["edited"]:
                if kind == "cdp":
                    record["profile"]["last_name"] = "Hand-Edited"
                else:
                    record["lastName"] = "Hand-Edited"
            store[cid] = record
        for extra in range(k):  # records that never were golden records
            oid = n + 1000 + extra
            store[oid] = ({"id": oid, "email": f"stranger{oid}@example.com"} if kind == "cdp"
                          else {"email": f"stranger{oid}@example.com", "externalIds": {"custsync_id": oid}})
        DeliveredState.objects.bulk_create(states, batch_size=5000)
        live = n - k
        expected[kind] = {"in_sync": live - 5 * k, "missing_in_target": 2 * k, "orphan_in_target": 2 * k,
                          "field_drift": 3 * k}
    return expected


def main():
    args = parse_args()
    print(f"seed {args.seed}; database {args.database_url.split('@')[-1]}; cores {os.cpu_count()}", flush=True)
    creds = {"CDP_TOKEN": secrets.token_hex(16), "CRM_API_KEY": secrets.token_hex(16)}
    os.environ.update(DATABASE_URL=args.database_url, DJANGO_SETTINGS_MODULE="custsync_project.settings",
                      LOG_LEVEL="WARNING", **creds)
    os.environ.pop("TEST_DATABASE_NAME", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from targets.sandbox import Sandbox, SandboxCredentials

    results = []
    for n in args.n:
        connection.close()
        fresh_database(args.database_url)
        call_command("migrate", verbosity=0)
        box = Sandbox(credentials=SandboxCredentials(cdp_token=creds["CDP_TOKEN"], crm_api_key=creds["CRM_API_KEY"]),
                      seed=args.seed).start()
        try:
            t0 = time.monotonic()
            expected = seed(n, pct=args.pct, rng=random.Random(args.seed), sandbox_url=box.url, box=box)
            seeding = round(time.monotonic() - t0, 1)
            connection.close()
            env = child_env(args.database_url, creds)
            logs = Path("/tmp") / f"reconcile_bench_{n}"
            logs.mkdir(exist_ok=True)
            idle = measure([sys.executable, "manage.py", "check"], env, logs / "idle.log")
            stream = measure([sys.executable, str(BASE_DIR / "bench" / "reconcile_stream_baseline.py"),
                              "--page-size", str(PAGE_SIZE)], env, logs / "stream.log")
            run = measure([sys.executable, "manage.py", "reconcile", "--json", "--page-size", str(PAGE_SIZE),
                           "--progress-every", str(max(10_000, n // 4))], env, logs / "reconcile.log")
            report = json.loads((logs / "reconcile.log").read_text().strip().splitlines()[-1])
        finally:
            box.stop()
        counts = {r["target"]: r["counts"] for r in report["runs"]}
        ok = counts == expected
        result = {"n": n, "database": "postgresql" if args.database_url.startswith("postgres") else "sqlite",
                  "seeding_seconds": seeding, "idle": idle, "stream_only": stream, "reconcile": run,
                  "time_ratio_vs_stream": round(run["seconds"] / max(stream["seconds"], 0.01), 2),
                  "rss_ratio_vs_idle": round(run["peak_rss_mib"] / max(idle["peak_rss_mib"], 0.1), 2),
                  "counts_as_seeded": ok, "counts": counts,
                  "durations": {r["target"]: r["duration_seconds"] for r in report["runs"]}}
        if not ok:
            result["expected"] = expected
        results.append(result)
        print(json.dumps(result), flush=True)

    print()
    print(f"{'N':>8} {'db':>10} {'reconcile s':>12} {'peak MiB':>9} {'stream s':>9} {'stream MiB':>10} "
          f"{'idle MiB':>9} {'t/stream':>8} {'rss/idle':>8} {'counts ok':>9}")
    for r in results:
        print(f"{r['n']:>8} {r['database']:>10} {r['reconcile']['seconds']:>12} {r['reconcile']['peak_rss_mib']:>9} "
              f"{r['stream_only']['seconds']:>9} {r['stream_only']['peak_rss_mib']:>10} {r['idle']['peak_rss_mib']:>9} "
              f"{r['time_ratio_vs_stream']:>8} {r['rss_ratio_vs_idle']:>8} {str(r['counts_as_seeded']):>9}")
    if not all(r["counts_as_seeded"] and r["reconcile"]["exit"] == 0 for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
