"""Infrastructure faults under load (PostgreSQL only, seeded, bounded, 127.0.0.1 only).

Each scenario sends signed events for a set of customers through the real
gateway (gunicorn) to real worker clusters while one piece of the
infrastructure fails, then drains and checks what an operator would:

- gateway workers SIGKILLed mid-request: the at-least-once sender resends,
  and no event is stored twice;
- PostgreSQL restarted: the gateway answers 503 with Retry-After meanwhile,
  the sender resends, and every accepted event is processed exactly once;
- Redis (the task broker) restarted: its task messages are lost, and the
  sweepers recover every event.

Replay a run: INFRA_SEED=<printed seed>.
"""

import os
import random
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from custsync_project.schedules import schedules_ensure
from targets.models import OutboxMessage
from targets.tests.support import make_target, sandbox, target_env, wait_until  # noqa: F401
from tests.harness import (
    SOURCE_SECRETS,
    Cluster,
    EventSender,
    Gateway,
    assert_targets_hold_golden,
    backlog,
    drain,
    redis_flush,
    redis_reachable,
    sources_create,
    workload,
)
from webhooks.models import InboxEvent

SEED = int(os.environ.get("INFRA_SEED") or random.SystemRandom().randrange(1, 10**6))
REDIS_DB = int(os.environ.get("INFRA_REDIS_DB", "13"))
EVENTS, CUSTOMERS = 600, 120

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _children(pid: int) -> list[int]:
    """Direct child processes of `pid` (Linux /proc), e.g. gunicorn's workers."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _environment(tmp_path, *, broker: str) -> dict[str, str]:
    env = sources_create()
    schedules_ensure(specs=settings.CUSTSYNC_SCHEDULES)
    env.update(INBOX_LEASE_SECONDS="20", INBOX_SWEEP_AFTER_SECONDS="10", Q_WORKERS="2", Q_TIMEOUT="30",
               Q_RETRY="40", INBOX_PUMP_BUDGET_SECONDS="20", LOG_FORMAT="text", LOG_LEVEL="WARNING")
    if broker == "redis":
        env["REDIS_URL"] = f"redis://127.0.0.1:6379/{REDIS_DB}"
        redis_flush(REDIS_DB)
    else:
        env["REDIS_URL"] = ""
    return env


def _assert_each_event_stored_and_processed_once(unique, sender):
    outcomes = sender.outcomes()
    assert set(outcomes) <= {"accepted", "duplicate_ignored"}, outcomes
    stored = Counter(InboxEvent.objects.values_list("event_id", flat=True))
    assert set(stored) == {e["event_id"] for e in unique}, "an accepted event is missing"
    assert max(stored.values()) == 1, "an event was stored twice"
    statuses = Counter(InboxEvent.objects.values_list("status", flat=True))
    assert statuses == {"processed": len(unique)}, statuses
    return outcomes


def test_gateway_workers_killed_mid_request(sandbox, target_env, tmp_path):  # noqa: F811
    print(f"\ninfra/gateway-kill: seed={SEED} (replay: INFRA_SEED={SEED})")
    rng = random.Random(SEED)
    make_target(sandbox, "cdp", rate_limit_per_minute=0)
    env = _environment(tmp_path, broker="orm")
    unique, sends = workload(rng=rng, customers=CUSTOMERS, events=EVENTS, duplicate_rate=0.1)
    gateway = Gateway(log_dir=tmp_path, env={k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"},
                      workers=2, threads=4)
    cluster = Cluster(name="q0", log_dir=tmp_path, env=env)
    killed: list[int] = []
    progress = {"sent": 0}

    def killer():
        # three SIGKILLs of one gunicorn worker each, spread over the sending (gunicorn forks a new one)
        for share in (0.2, 0.45, 0.7):
            while progress["sent"] < share * len(sends):
                time.sleep(0.01)
            workers = _children(gateway.process.pid)
            if workers:
                victim = rng.choice(sorted(workers))
                os.kill(victim, 9)
                killed.append(victim)

    try:
        gateway.start()
        cluster.start()
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        sender = EventSender(url=gateway.url, sources=SOURCE_SECRETS, connections=6, retries=10)
        seconds = sender.send_all(sends, on_progress=lambda i: progress.__setitem__("sent", progress["sent"] + 1))
        thread.join(timeout=30)
        drain_seconds = drain(env=env, timeout=180, sweep_every=10)
    finally:
        cluster.stop()
        gateway.stop()

    # then: three workers died mid-stream, and still every event is stored exactly once and processed
    assert len(killed) == 3, killed
    outcomes = _assert_each_event_stored_and_processed_once(unique, sender)
    print(f"  sent {len(sends)} ({seconds:.1f} s), outcomes {dict(outcomes)}, killed gunicorn workers {killed}, "
          f"drained in {drain_seconds:.1f} s")


@pytest.mark.skipif(not shutil.which("pg_ctlcluster"), reason="needs pg_ctlcluster to restart PostgreSQL")
def test_postgres_restarted_under_load(sandbox, target_env, tmp_path):  # noqa: F811
    print(f"\ninfra/postgres-restart: seed={SEED} (replay: INFRA_SEED={SEED})")
    rng = random.Random(SEED)
    make_target(sandbox, "cdp", rate_limit_per_minute=0)
    broker = "redis" if redis_reachable() else "orm"
    env = _environment(tmp_path, broker=broker)
    unique, sends = workload(rng=rng, customers=CUSTOMERS, events=EVENTS, duplicate_rate=0.1)
    gateway = Gateway(log_dir=tmp_path, env={k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"},
                      workers=2, threads=4)
    clusters = [Cluster(name=f"q{i}", log_dir=tmp_path, env=env) for i in range(2)]
    progress = {"sent": 0}
    restart = {}
    version = sorted(os.listdir("/etc/postgresql"))[-1]

    def restarter():
        while progress["sent"] < 0.4 * len(sends):
            time.sleep(0.01)
        started = time.monotonic()
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                       check=True, capture_output=True, timeout=120)
        restart["seconds"] = time.monotonic() - started

    try:
        gateway.start()
        for cluster in clusters:
            cluster.start()
        thread = threading.Thread(target=restarter, daemon=True)
        thread.start()
        sender = EventSender(url=gateway.url, sources=SOURCE_SECRETS, connections=6, retries=30)
        seconds = sender.send_all(sends, on_progress=lambda i: progress.__setitem__("sent", progress["sent"] + 1))
        thread.join(timeout=120)
        connections.close_all()  # this process's connection died with the server
        # a supervisor restarts a worker that exited; the scenario counts them
        restarted = 0
        for cluster in clusters:
            if not cluster.alive():
                cluster.start()
                restarted += 1
        drain_seconds = drain(env=env, timeout=240, sweep_every=10)
    finally:
        for cluster in clusters:
            cluster.stop()
        gateway.stop()
        if broker == "redis":
            redis_flush(REDIS_DB)

    assert "seconds" in restart, "PostgreSQL was not restarted"
    refused = sum(1 for r in sender.attempts if r == 503)
    outcomes = _assert_each_event_stored_and_processed_once(unique, sender)
    print(f"  sent {len(sends)} ({seconds:.1f} s), outcomes {dict(outcomes)}; restart took {restart['seconds']:.1f} s, "
          f"503 answers meanwhile {refused}; clusters restarted by the supervisor {restarted}; "
          f"drained in {drain_seconds:.1f} s")


def _redis_config() -> list[str]:
    """The running server's own settings as redis-server arguments, so the restarted one is the same."""
    arguments = ["--port", "6379", "--daemonize", "yes"]
    for key in ("bind", "dir", "logfile", "save", "appendonly"):
        result = subprocess.run(["redis-cli", "-p", "6379", "config", "get", key], capture_output=True, text=True,
                                timeout=10)
        lines = result.stdout.splitlines()
        if len(lines) >= 2:
            arguments += [f"--{key}", *(lines[1].split() if key == "bind" else [lines[1]])]
    return arguments


REDIS_DOWN_SECONDS = 5.0  # the broker stays away this long: wake-ups sent meanwhile are lost


def _redis_restart(arguments: list[str], *, down_for: float = 0.0) -> float:
    """Stop Redis without saving (every queued task message is lost), keep it down, start it again."""
    started = time.monotonic()
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True, timeout=30)
    wait_until(lambda: not redis_reachable(), timeout=10, message="redis stopped")
    time.sleep(down_for)  # the outage itself, not a wait for a condition
    subprocess.run(["redis-server", *arguments], check=True, capture_output=True, timeout=30)
    wait_until(redis_reachable, timeout=20, message="redis started again")
    return time.monotonic() - started


@pytest.mark.skipif(not (shutil.which("redis-server") and shutil.which("redis-cli") and redis_reachable()),
                    reason="needs a local redis-server it may restart")
def test_redis_restarted_under_load(sandbox, target_env, tmp_path):  # noqa: F811
    print(f"\ninfra/redis-restart: seed={SEED} (replay: INFRA_SEED={SEED})")
    rng = random.Random(SEED)
    make_target(sandbox, "cdp", rate_limit_per_minute=0)
    env = _environment(tmp_path, broker="redis")
    unique, sends = workload(rng=rng, customers=CUSTOMERS, events=EVENTS, duplicate_rate=0.1)
    gateway = Gateway(log_dir=tmp_path, env={k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"},
                      workers=2, threads=4)
    clusters = [Cluster(name=f"q{i}", log_dir=tmp_path, env=env) for i in range(2)]
    progress = {"sent": 0}
    restart = {}
    arguments = _redis_config()

    def restarter():
        while progress["sent"] < 0.5 * len(sends):
            time.sleep(0.01)
        restart["seconds"] = _redis_restart(arguments, down_for=REDIS_DOWN_SECONDS)
        restart["backlog"] = backlog()

    try:
        gateway.start()
        for cluster in clusters:
            cluster.start()
        thread = threading.Thread(target=restarter, daemon=True)
        thread.start()
        sender = EventSender(url=gateway.url, sources=SOURCE_SECRETS, connections=6, retries=10)
        seconds = sender.send_all(sends, on_progress=lambda i: progress.__setitem__("sent", progress["sent"] + 1))
        thread.join(timeout=60)
        restarted = 0
        for cluster in clusters:
            if not cluster.alive():
                cluster.start()
                restarted += 1
        drain_seconds = drain(env=env, timeout=240, sweep_every=15)
    finally:
        for cluster in clusters:
            cluster.stop()
        gateway.stop()
        if not redis_reachable():
            _redis_restart(arguments)
        redis_flush(REDIS_DB)

    assert "seconds" in restart, "Redis was not restarted"
    outcomes = _assert_each_event_stored_and_processed_once(unique, sender)
    print(f"  sent {len(sends)} ({seconds:.1f} s), outcomes {dict(outcomes)}; redis down {restart['seconds']:.1f} s, "
          f"backlog when it came back {restart['backlog']}; "
          f"clusters restarted by the supervisor {restarted}; drained in {drain_seconds:.1f} s")


OUTAGE_SECONDS = 180.0  # the three minutes, not scaled down


def test_target_down_three_minutes_mid_run(sandbox, target_env, tmp_path):  # noqa: F811
    print(f"\ninfra/target-outage: seed={SEED} (replay: INFRA_SEED={SEED}), crm refusing connections and cdp "
          f"answering 503 for {OUTAGE_SECONDS:g} s")
    rng = random.Random(SEED)
    seed_sync = {"max_retries": 5, "backoff_seconds": 0.5, "dead_letter_queue": True}  # the seed's sync section
    targets = {"cdp": make_target(sandbox, "cdp", rate_limit_per_minute=600, timeout_seconds=5, **seed_sync),
               "crm": make_target(sandbox, "crm", rate_limit_per_minute=300, timeout_seconds=5, **seed_sync)}
    env = _environment(tmp_path, broker="orm")
    unique, sends = workload(rng=rng, customers=CUSTOMERS, events=EVENTS, duplicate_rate=0.0)
    waves = [sends[: len(sends) // 3], sends[len(sends) // 3: 2 * len(sends) // 3], sends[2 * len(sends) // 3:]]
    gateway = Gateway(log_dir=tmp_path, env={k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"},
                      workers=2, threads=4)
    clusters = [Cluster(name=f"q{i}", log_dir=tmp_path, env=env) for i in range(2)]
    try:
        gateway.start()
        for cluster in clusters:
            cluster.start()
        sender = EventSender(url=gateway.url, sources=SOURCE_SECRETS, connections=4)
        # when: a first wave is delivered, then both targets fail while two more waves arrive
        sender.send_all(waves[0])
        drain(env=env, timeout=120, sweep_every=10)
        down_from = time.time()
        sandbox.state.set_faults("crm", down_until=down_from + OUTAGE_SECONDS)
        sandbox.state.set_faults("cdp", force_status=503)
        sender.send_all(waves[1])
        wait_until(lambda: time.time() >= down_from + OUTAGE_SECONDS / 2, timeout=OUTAGE_SECONDS)
        sender.send_all(waves[2])
        wait_until(lambda: time.time() >= down_from + OUTAGE_SECONDS, timeout=OUTAGE_SECONDS)
        sandbox.state.clear_faults()
        dead_during = OutboxMessage.objects.filter(status__in=["dead", "discarded"]).count()
        # then: after they are back, everything drains (the next probe comes at most one capped gap later)
        recovered_at = time.time()
        drain_seconds = drain(env=env, timeout=420, sweep_every=15)
    finally:
        for cluster in clusters:
            cluster.stop()
        gateway.stop()

    assert sender.outcomes() == {"accepted": len(unique)}, sender.outcomes()
    assert dead_during == 0 and not OutboxMessage.objects.filter(status__in=["dead", "discarded"]).exists()
    held = assert_targets_hold_golden(sandbox, list(targets.values()))
    per_minute = {}
    for system in ("cdp", "crm"):
        times = [r["t"] for r in sandbox.state.requests_for(system)]
        per_minute[system] = [sum(1 for at in times if down_from + 60 * m <= at < down_from + 60 * (m + 1))
                              for m in range(int(OUTAGE_SECONDS // 60))]
    assert all(n <= 30 for counts in per_minute.values() for n in counts[1:]), per_minute
    print(f"  {len(unique)} events, requests per outage minute {per_minute}, nothing dead; "
          f"drained {drain_seconds:.0f} s after recovery ({time.time() - recovered_at:.0f} s); targets hold {held}")
