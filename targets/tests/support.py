"""Reusable test helpers: sandbox fixture, targets and customers, worker and qcluster subprocesses.

Import the fixtures in a conftest or test module:
`from targets.tests.support import sandbox, target_env  # noqa: F401`.
"""

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
from django.conf import settings
from django.db import connection

from canonical.models import Customer, ExternalId
from targets import auth as target_auth
from targets.models import Target
from targets.sandbox import Sandbox, SandboxCredentials
from targets.services import target_mappings_ensure_defaults, target_runtime_ensure

BASE_DIR = Path(settings.BASE_DIR)

# Test-only credentials; they exist only in this process's environment and its children.
TEST_SECRETS = {
    "CDP_TOKEN": "test-cdp-token-0001",
    "CRM_API_KEY": "test-crm-key-0001",
    "N8N_SECRET": "whsec_" + base64.b64encode(b"test-webhook-secret-0001-bytes!!").decode(),
    "OAUTH_CLIENT_ID": "custsync-test",
    "OAUTH_CLIENT_SECRET": "test-oauth-secret-0001",
}


def wait_until(predicate: Callable[[], object], *, timeout: float, interval: float = 0.05, message: str = ""):
    """Poll `predicate` until truthy (returned) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)


@pytest.fixture
def target_env(monkeypatch):
    for key, value in TEST_SECRETS.items():
        monkeypatch.setenv(key, value)
    target_auth._token_cache.clear()
    yield TEST_SECRETS
    target_auth._token_cache.clear()


@pytest.fixture
def sandbox(target_env):
    box = Sandbox(credentials=SandboxCredentials(
        cdp_token=TEST_SECRETS["CDP_TOKEN"], crm_api_key=TEST_SECRETS["CRM_API_KEY"],
        webhook_secret=TEST_SECRETS["N8N_SECRET"], oauth_client_id=TEST_SECRETS["OAUTH_CLIENT_ID"],
        oauth_client_secret=TEST_SECRETS["OAUTH_CLIENT_SECRET"],
    ), seed=1234).start()
    yield box
    box.stop()


def make_target(sandbox: Sandbox, kind: str = "cdp", *, name: str | None = None, auth: str | None = None,
                **fields) -> Target:
    """A target pointing at the sandbox with the kind's default auth and mapping."""
    urls = {"cdp": f"{sandbox.url}/cdp", "crm": f"{sandbox.url}/crm", "webhook": f"{sandbox.url}/webhook/customer"}
    auth = auth or {"cdp": "bearer", "crm": "api_key", "webhook": "standard_webhooks"}[kind]
    refs = {"bearer": {"token": "${CDP_TOKEN}"}, "api_key": {"api_key": "${CRM_API_KEY}"},
            "standard_webhooks": {"secret": "${N8N_SECRET}"}, "none": {},
            "oauth2": {"client_secret": "${OAUTH_CLIENT_SECRET}"}}[auth]
    values = dict(
        name=name or kind, kind=kind, base_url=urls[kind], auth_kind=auth, secret_refs=refs,
        timeout_seconds=2, rate_limit_per_minute=0, max_retries=5, backoff_seconds=0.05,
    )
    if auth == "oauth2":
        values.update(oauth_token_url=f"{sandbox.url}/oauth/token", oauth_client_id="${OAUTH_CLIENT_ID}")
    values.update(fields)
    target = Target.objects.create(**values)
    target_mappings_ensure_defaults(target=target)
    target_runtime_ensure(target_id=target.pk)
    return target


def make_customer(*, external_ids: dict[str, str] | None = None, **fields) -> Customer:
    values = dict(version=1, email="max@example.com", phone="+4915123456789", first_name="Max",
                  last_name="Mustermann", marketing_opt_in=True, last_source="shop")
    values.update(fields)
    customer = Customer.objects.create(**values)
    for system, value in (external_ids or {}).items():
        ExternalId.objects.create(customer=customer, system=system, value=value)
    return customer


def current_database_url() -> str:
    """DATABASE_URL of the database the current test uses (call inside a test)."""
    db = connection.settings_dict
    if settings.IS_SQLITE:
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{db['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DATABASE_URL=current_database_url(), DJANGO_SETTINGS_MODULE="custsync_project.settings",
               PYTHONUNBUFFERED="1")
    env.pop("TEST_DATABASE_NAME", None)
    env.update(extra)
    return env


def start_worker(*, target_id: int, seconds: float, seed: int = 0, log_path: Path | None = None) -> subprocess.Popen:
    """A separate process running `outbox_deliver_due` for one target (see worker_main)."""
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "targets.tests.worker_main", "--target-id", str(target_id),
         "--seconds", str(seconds), "--seed", str(seed)],
        cwd=BASE_DIR, env=subprocess_env(), stdout=out, stderr=subprocess.STDOUT,
    )


def stop_process(process: subprocess.Popen, *, timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


@pytest.fixture
def qcluster(tmp_path):
    """Start `manage.py qcluster` (the worker: every cluster) against the test database; use in a transaction=True test."""
    processes = []

    def start(**env):
        log = open(tmp_path / f"qcluster-{len(processes)}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=BASE_DIR,
            env=subprocess_env(Q_WORKERS="2", **env), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen, *, timeout: float = 15) -> None:
    """Stop a process started with start_new_session: SIGTERM to it, then SIGKILL to its whole group.

    SIGTERM goes to the process itself, as Kubernetes sends it (a worker also stops on a group-wide
    signal: tests/e2e/test_worker_contract.py). Leftovers are killed with the group.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)
