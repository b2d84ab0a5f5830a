"""Shared plumbing for the benchmarks: a fresh PostgreSQL database per run, the
environment, signed events, gunicorn / worker subprocesses, RSS and load readings.

Everything binds to 127.0.0.1; every loop here is bounded in time and count.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = str(BASE_DIR / ".venv" / "bin" / "python")
GUNICORN = str(BASE_DIR / ".venv" / "bin" / "gunicorn")
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_BASE_URL = PG_ADMIN_URL.rsplit("/", 1)[0]
VAR_DIR = BASE_DIR / "var" / "bench"

# Bench-only secrets: they live in this process's environment and its children only.
SECRETS = {
    "WEBHOOK_SECRET": "bench-webhook-secret-" + "0" * 24,
    "SUPPORT_SECRET": "whsec_" + base64.b64encode(b"bench-support-secret-32-bytes!!!").decode(),
    "N8N_SECRET": "whsec_" + base64.b64encode(b"bench-n8n-secret-32-bytes-long!!").decode(),
    "CDP_TOKEN": "bench-cdp-token",
    "CRM_API_KEY": "bench-crm-key",
}


# --- machine ---------------------------------------------------------------------

def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model or platform.processor(), "python": platform.python_version()}


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _terminate(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")


def header(name: str) -> None:
    # A SIGTERM (e.g. from `timeout`) unwinds through the finally blocks that stop our subprocesses.
    signal.signal(signal.SIGTERM, _terminate)
    m = machine()
    print(f"# {name}: nproc={m['nproc']} cpu={m['cpu']!r} python={m['python']} load(1/5/15)={loadavg()}", flush=True)


def median(values):
    return statistics.median(values) if values else float("nan")


# --- database ----------------------------------------------------------------------

def database_url(name: str) -> str:
    return f"{PG_BASE_URL}/{name}"


def database_recreate(name: str) -> str:
    """Drop and create `name` (bench databases only); returns its URL."""
    import psycopg2

    if not name.startswith("custsync_bench"):
        raise SystemExit(f"refusing to recreate {name!r}: bench databases are named custsync_bench*")
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return database_url(name)


def database_drop(name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def bench_env(db_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(SECRETS)
    env.update(
        DATABASE_URL=db_url, DJANGO_SETTINGS_MODULE="custsync_project.settings", PYTHONUNBUFFERED="1",
        DEBUG="false", LOG_FORMAT="json", LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", ""),
    )
    for key in ("TEST_DATABASE_NAME", "PROMETHEUS_MULTIPROC_DIR", "METRICS_ROOT", "Q_SYNC"):
        env.pop(key, None)
    env.update(extra)
    return env


def manage(env: dict, *args: str, timeout: float = 300) -> str:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def project_setup(db_name: str, **extra_env: str) -> dict:
    """Recreate the database, migrate, import the dev sync config; returns the environment to use."""
    url = database_recreate(db_name)
    env = bench_env(url, **extra_env)
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "import_sync_config", str(BASE_DIR / "deploy" / "sync-config.dev.json"))
    return env


def django_setup(env: dict) -> None:
    """Use Django in this process against the bench database (call once, before importing models)."""
    os.environ.update({k: v for k, v in env.items() if k in SECRETS or k in (
        "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DEBUG", "LOG_FORMAT", "LOG_LEVEL", "REDIS_URL")})
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()


# --- events --------------------------------------------------------------------------

def sample_event(i: int, *, customers: int, source: str = "shop", prefix: str = "evt", rng: random.Random | None = None) -> dict:
    """An upsert for customer `i % customers` (v1 envelope, DESIGN.md's shape)."""
    rng = rng or random.Random(i)
    c = i % customers
    return {
        "event_id": f"{prefix}_{i:08d}",
        "source": source,
        "schema_version": 1,
        "type": "customer.upsert",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_760_000_000 + i)) + "Z",
        "data": {
            f"{source}_id": 100_000 + c,
            "email": f"Person.{c}@Example.com ",
            "phone": f"+49151{2000000 + c:08d}",
            "first_name": rng.choice(["Max", "Erika", "Jonas", "Lea", "Paul", "Mia"]),
            "last_name": f"Muster{c}",
            "marketing_opt_in": bool(i % 2),
        },
    }


def sign_hmac(body: bytes, *, secret: str | None = None, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    key = (secret or SECRETS["WEBHOOK_SECRET"]).encode()
    sig = hmac.new(key, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Timestamp": ts, "X-Signature": f"sha256={sig}"}


def event_body(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


# --- processes -------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, *, timeout: float = 30) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer: the server is up
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def start(cmd: list[str], *, env: dict, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "w")
    return subprocess.Popen(cmd, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen, *, timeout: float = 15) -> None:
    """SIGTERM the process group we started, SIGKILL after `timeout`."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass


def gunicorn_start(app: str, *, env: dict, port: int, log: Path, pythonpath: str | None = None) -> subprocess.Popen:
    """gunicorn with the project's config (deploy/gunicorn.conf.py) on 127.0.0.1:port."""
    env = dict(env, HOST="127.0.0.1", PORT=str(port))
    cmd = [GUNICORN, "--config", str(BASE_DIR / "deploy" / "gunicorn.conf.py")]
    if pythonpath:
        cmd += ["--pythonpath", pythonpath]
    process = start(cmd + [app], env=env, log=log)
    return process


def children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [int(x) for x in out.split()]


def rss_peak_mib(pids: list[int]) -> float:
    """Largest VmHWM (peak resident set) among `pids`, in MiB."""
    peak = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


class CpuTimes:
    """CPU seconds (user+system) of a set of pids between two readings."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.start = self._read()

    def _read(self) -> float:
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in self.pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError):
                continue
        return total

    def elapsed(self) -> float:
        return self._read() - self.start


def summary_append(path: str | None, summary: dict) -> None:
    """Append one run's summary as a JSON line (--json PATH), for history across runs."""
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(summary) + "\n")


def rounds_run(title: str, *, db: str, rounds: int, one_round) -> list:
    """Print the header, run `one_round(r)` for r = 1..rounds, and drop the bench database whatever happens."""
    header(title)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    try:
        return [one_round(r) for r in range(1, rounds + 1)]
    finally:
        database_drop(db)


def result_report(summary: dict, *, line: str, json_path: str | None) -> None:
    """Print the RESULT line (`line` formatted with the summary and the load after the run), keep it with --json."""
    summary["load_after"] = loadavg()
    print(line.format(**summary), flush=True)
    summary_append(json_path, summary)


def pyspy_start(pid: int, *, seconds: float, name: str):
    """With BENCH_PYSPY=1 and py-spy installed (not in requirements): sample `pid` (GIL holders
    only, i.e. CPU) for `seconds` into var/bench/<name>-pyspy.txt; summarize with bench/pyspy_summary.py."""
    pyspy = shutil.which("py-spy") or str(BASE_DIR / ".venv" / "bin" / "py-spy")
    if not os.environ.get("BENCH_PYSPY") or not os.path.exists(pyspy):
        return None
    out = VAR_DIR / f"{name}-pyspy.txt"
    cmd = [pyspy, "record", "-p", str(pid), "-d", str(max(int(seconds), 1)), "-r", "200", "--gil",
           "-f", "raw", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out


def pyspy_finish(profiler) -> None:
    if profiler is not None:
        process, out = profiler
        process.wait(timeout=120)
        print(f"  py-spy profile: {out} (bench/pyspy_summary.py {out})", flush=True)


def inbox_preload(*, events: int, customers: int) -> None:
    """With Django set up: `events` upserts of source shop straight into the inbox (as the gateway
    stores them), and every enabled target's pump lease held, so that delivery does not run."""
    from datetime import timedelta

    from django.utils import timezone

    from targets.models import Target, TargetRuntime
    from targets.services import target_runtime_ensure
    from webhooks.envelope import envelope_validate
    from webhooks.models import InboxEvent, Source

    for target in Target.objects.filter(enabled=True):
        target_runtime_ensure(target_id=target.pk)
    TargetRuntime.objects.update(pump_owner="bench", pump_lease_until=timezone.now() + timedelta(hours=1))
    source = Source.objects.get(name="shop")
    rows = []
    for i in range(events):
        obj = sample_event(i, customers=customers)
        envelope = envelope_validate(obj)
        rows.append(InboxEvent(source=source, event_id=envelope.event_id, type=envelope.type, schema_version=1,
                               occurred_at=envelope.occurred_at, payload=obj))
    InboxEvent.objects.bulk_create(rows, batch_size=1000)
