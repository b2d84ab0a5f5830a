"""The worker contract with real processes: a bare `manage.py qcluster` and the Procfile's worker do
every kind of work (inbox and deliveries), a worker stops cleanly on SIGTERM or SIGINT to itself or to
its process group (busy tasks included), `honcho start` stops on Ctrl-C without a SIGKILL, and the
sweeper schedules exist after `migrate` on an empty database."""

import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django_q.tasks import async_task

from canonical.models import Customer
from targets.tests.support import (  # noqa: F401
    BASE_DIR, make_target, qcluster, sandbox, stop_process_group, subprocess_env, target_env, wait_until,
)
from tests.factories import source_create
from tests.harness import free_port
from webhooks.models import InboxEvent

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

STOP_WITHIN_SECONDS = 10


def procfile_command(name: str) -> list[str]:
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            argv = shlex.split(line.split(":", 1)[1])
            return [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]
    raise AssertionError(f"no {name} in the Procfile")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def start(argv: list[str], log: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=BASE_DIR, env=subprocess_env(Q_WORKERS="2", Q_DELIVERY_WORKERS="2", **env),
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def clusters_running(log: Path) -> bool:
    text = log.read_text()
    return "cluster custsync started" in text and "cluster custsync-delivery started" in text


def sample_event_reaches_cdp(live_server, sandbox, monkeypatch, capsys, event_id: str) -> None:  # noqa: F811
    call_command("send_sample_webhook", url=f"{live_server.url}/webhooks/customer", source="shop", event_id=event_id)
    assert "202" in capsys.readouterr().out
    event = wait_until(lambda: InboxEvent.objects.filter(event_id=event_id, status="processed").first(),
                       timeout=30, message="inbox event processed")
    customer = Customer.objects.get(pk=event.customer_id)
    record = wait_until(lambda: sandbox.state.record("cdp", customer.pk), timeout=30, message="cdp upsert")
    assert record["email"] == "person@example.com" and record["meta"]["version"] == customer.version


@pytest.fixture
def shop_to_cdp(sandbox, monkeypatch):  # noqa: F811
    monkeypatch.setenv("WEBHOOK_SECRET", "e2e-webhook-secret-0001")
    source_create("shop")
    make_target(sandbox, "cdp")


def test_a_bare_qcluster_processes_the_inbox_and_delivers(live_server, sandbox, shop_to_cdp, qcluster,  # noqa: F811
                                                          monkeypatch, capsys):
    # given: one worker started only as `manage.py qcluster` (the fixture), nothing else
    qcluster()
    # when / then: a webhook is applied to the golden record and delivered to the sandbox cdp
    sample_event_reaches_cdp(live_server, sandbox, monkeypatch, capsys, "evt_qcluster")


def test_the_procfile_worker_processes_the_inbox_and_delivers(live_server, sandbox, shop_to_cdp, tmp_path,  # noqa: F811
                                                              monkeypatch, capsys):
    process = start(procfile_command("worker"), tmp_path / "worker.log")
    try:
        sample_event_reaches_cdp(live_server, sandbox, monkeypatch, capsys, "evt_procfile")
    finally:
        stop_process_group(process)


def test_one_cluster_by_configuration_says_what_it_leaves_out(tmp_path):
    log = tmp_path / "delivery-only.log"
    process = start([sys.executable, "manage.py", "qcluster"], log, Q_CLUSTER_NAME="custsync-delivery",
                    LOG_FORMAT="text")
    try:
        wait_until(lambda: "cluster custsync-delivery started" in log.read_text(), timeout=60, message="start")
        text = log.read_text()
        assert "WARNING" in text and "runs only cluster custsync-delivery" in text
        assert "inbox processing" in text and "Q_CLUSTER_NAME=custsync " in text
    finally:
        stop_process_group(process)


@pytest.mark.parametrize("signum, to_group", [
    (signal.SIGTERM, True), (signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGINT, False),
], ids=["sigterm-group", "sigint-group", "sigterm-process", "sigint-process"])
def test_a_busy_worker_stops_cleanly_on_a_signal(tmp_path, signum, to_group):
    # given: a worker whose clusters each run a long task
    log = tmp_path / "worker.log"
    process = start([sys.executable, "manage.py", "qcluster"], log, LOG_FORMAT="text")
    try:
        wait_until(lambda: clusters_running(log), timeout=60, message="both clusters started")
        markers = [tmp_path / "main.running", tmp_path / "delivery.running"]
        async_task("tests.e2e.tasks.marker_sleep", str(markers[0]), 120)
        async_task("tests.e2e.tasks.marker_sleep", str(markers[1]), 120, cluster="custsync-delivery")
        wait_until(lambda: all(marker.exists() for marker in markers), timeout=60, message="tasks running")
        # when: the signal goes to the worker's process, or to its whole process group (honcho, Ctrl-C)
        sent = time.monotonic()
        if to_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        returncode = process.wait(timeout=STOP_WITHIN_SECONDS + 20)
        elapsed = time.monotonic() - sent
        # then: it stopped within the bound, cleanly, leaving no process of its group behind
        assert elapsed < STOP_WITHIN_SECONDS, f"stopped after {elapsed:.1f} s; see {log}"
        assert returncode in (0, -signum), log.read_text()[-3000:]
        wait_until(lambda: not group_alive(process.pid), timeout=5, message="no process of the group left")
        text = log.read_text()
        assert "interrupted" in text and "worker %d stopped" % process.pid in text
        assert "Traceback" not in text, text[-3000:]
    finally:
        stop_process_group(process)


def test_honcho_with_the_procfile_stops_on_ctrl_c_without_sigkill(tmp_path):
    # given: `honcho start` with the project's Procfile (web and worker), as `make run` runs it
    port = free_port()
    env = subprocess_env(PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="1", XDG_RUNTIME_DIR=str(tmp_path),
                         PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", LOG_FORMAT="text")
    log = tmp_path / "honcho.log"
    honcho = subprocess.Popen([sys.executable, "-m", "honcho", "start", "-f", str(BASE_DIR / "Procfile")],
                              cwd=BASE_DIR, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_until(lambda: clusters_running(log) and "Listening at" in log.read_text(), timeout=90,
                   message="web and worker started")
        pids = [int(pid) for pid in re.findall(r"started \(pid=(\d+)\)", log.read_text())]
        assert len(pids) == 2
        # when: Ctrl-C (SIGINT to the terminal's foreground process group, honcho's)
        os.killpg(honcho.pid, signal.SIGINT)
        honcho.wait(timeout=30)
        # then: honcho stopped both with SIGTERM, never needed SIGKILL, and nothing is left
        text = log.read_text()
        assert "sending SIGTERM" in text and "SIGKILL" not in text, text[-3000:]
        wait_until(lambda: not any(group_alive(pid) for pid in pids), timeout=10, message="nothing left")
    finally:
        stop_process_group(honcho)


@pytest.mark.django_db(transaction=False)
def test_the_sweeper_schedules_exist_after_migrate_on_an_empty_database(tmp_path):
    database = tmp_path / "empty.sqlite3"
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=BASE_DIR, check=True,
                   env={**subprocess_env(), "DATABASE_URL": f"sqlite:///{database}"}, timeout=180)
    with sqlite3.connect(database) as connection:
        schedules = dict(connection.execute("SELECT name, func FROM django_q_schedule").fetchall())
    assert schedules == {"inbox-sweep": "webhooks.processing.inbox_sweep",
                         "outbox-sweep": "targets.tasks.outbox_sweep"}  # the nightly run stays opt-in
