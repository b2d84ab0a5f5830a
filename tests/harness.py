"""A multi-process harness for the scale-out and chaos suites: real gunicorn, real django-q2 clusters.

Everything here starts real processes against the test database of the
calling test (`current_database_url()`), so call it inside a
`django_db(transaction=True)` test:

- `Gateway`: gunicorn with the production config (`deploy/gunicorn.conf.py`),
  N gthread workers on a free 127.0.0.1 port; waits for `/healthz`.
- `Cluster`: one `manage.py qcluster` (a worker: every django-q2 cluster) in its own
  process group, so `kill()` (SIGKILL to the group) takes the master and its
  worker processes down at once, as a lost machine or container would.
- `EventSender`: signs (hmac-sha256 or Standard Webhooks) and posts events over
  several keep-alive connections; records every answer.
- `sweep()`: runs the inbox and outbox sweepers in a subprocess with the
  processes' environment (and so their broker: the test process's django-q2
  config is fixed at import and may name another broker).
- `drain()`: waits, bounded, until no inbox event is unfinished and no outbox
  message is pending or in flight, sweeping now and then.

Every wait is bounded; every process is stopped by its own id.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests
from django.conf import settings

from targets.tests.support import stop_process_group, subprocess_env, wait_until
from webhooks.signatures import hmac_sha256_sign, standard_webhooks_sign

BASE_DIR = Path(settings.BASE_DIR)
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_reachable(host: str = "127.0.0.1", port: int = 6379, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_flush(db: int, host: str = "127.0.0.1", port: int = 6379) -> None:
    """FLUSHDB of one numbered database (ours alone), with the redis client django-q2 uses."""
    import redis

    client = redis.Redis(host=host, port=port, db=db, socket_timeout=5)
    client.flushdb()
    client.close()


def max_in_window(times: list[float], window: float = 60.0) -> int:
    """The largest number of timestamps inside any half-open window of `window` seconds."""
    times = sorted(times)
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


class Gateway:
    """gunicorn serving custsync_project.wsgi with the production config file."""

    def __init__(self, *, log_dir: Path, env: dict[str, str], workers: int = 3, threads: int = 4):
        self.log_dir, self.env, self.workers, self.threads = log_dir, env, workers, threads
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60) -> "Gateway":
        env = subprocess_env(**self.env, HOST="127.0.0.1", PORT=str(self.port), WEB_CONCURRENCY=str(self.workers),
                             WEB_THREADS=str(self.threads), WEB_ACCESS_LOG="", WEB_KEEPALIVE="30")
        log = open(self.log_dir / f"gunicorn-{self.port}.log", "w")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py", "custsync_project.wsgi"],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

        def healthy():
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.process.returncode}; see {log.name}")
            try:
                return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, timeout=timeout, interval=0.2, message="gunicorn /healthz")
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)


class Cluster:
    """One worker (`manage.py qcluster`: every django-q2 cluster), killable with SIGKILL and restartable."""

    def __init__(self, *, name: str, log_dir: Path, env: dict[str, str]):
        self.name, self.log_dir, self.env = name, log_dir, env
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> "Cluster":
        if self.alive():
            raise RuntimeError(f"cluster {self.name} is already running")
        log = open(self.log_dir / f"cluster-{self.name}-{self.starts}.log", "w")
        self.process = subprocess.Popen(
            [PYTHON, "manage.py", "qcluster"], cwd=BASE_DIR, env=subprocess_env(**self.env),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL the whole cluster (master, pusher, workers, monitor) at once."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.kills += 1

    def restart(self) -> "Cluster":
        self.kill()
        return self.start()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)


def manage(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    """Run a management command as an operator would, with the processes' environment; returns stdout."""
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=BASE_DIR, env=subprocess_env(**env),
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout.strip()


def sweep(env: dict[str, str], *, timeout: float = 60) -> dict:
    """Run `inbox_sweep()` and `outbox_sweep()` once, in a subprocess with the clusters' broker."""
    code = (
        "import json; from webhooks.processing import inbox_sweep; from targets.services import outbox_sweep; "
        "print('SWEEP ' + json.dumps({'inbox': inbox_sweep(), 'outbox': outbox_sweep()}))"
    )
    result = subprocess.run([PYTHON, "manage.py", "shell", "-c", code], cwd=BASE_DIR, env=subprocess_env(**env),
                            capture_output=True, text=True, timeout=timeout)
    for line in result.stdout.splitlines():
        if line.startswith("SWEEP "):
            return json.loads(line[6:])
    raise AssertionError(f"sweep failed ({result.returncode}): {result.stderr[-2000:]}")


# --- sending ----------------------------------------------------------------------

@dataclass(frozen=True)
class SourceSpec:
    """How one source signs: `hmac-sha256` (secret as text) or `standard-webhooks` (whsec_ secret)."""

    name: str
    scheme: str
    secret: str


@dataclass
class Sent:
    event_id: str
    source: str
    status: int | None
    outcome: str | None  # accepted / duplicate_ignored / None
    error: str = ""


@dataclass
class EventSender:
    """Posts signed envelopes to `POST /webhooks/customer` over `connections` keep-alive sessions."""

    url: str
    sources: dict[str, SourceSpec]
    connections: int = 8
    timeout: float = 30.0
    retries: int = 3  # a sender retries transport errors and 5xx, as real senders do
    results: list[Sent] = field(default_factory=list)
    attempts: list[int | None] = field(default_factory=list)  # every try's status (None: a transport error)

    def signed(self, envelope: dict) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(envelope, separators=(",", ":")).encode()
        spec = self.sources[envelope["source"]]
        now = int(time.time())
        if spec.scheme == "standard-webhooks":
            headers = standard_webhooks_sign(secret=spec.secret, msg_id=f"msg_{envelope['event_id']}",
                                             timestamp=now, body=body)
        else:
            headers = hmac_sha256_sign(secret=spec.secret, timestamp=now, body=body)
        return body, {"Content-Type": "application/json", **headers}

    def _post(self, session: requests.Session, envelope: dict) -> Sent:
        error = ""
        for attempt in range(self.retries + 1):
            body, headers = self.signed(envelope)  # re-signed per attempt: fresh timestamp
            try:
                response = session.post(f"{self.url}/webhooks/customer", data=body, headers=headers,
                                        timeout=self.timeout)
            except requests.RequestException as exc:
                self.attempts.append(None)
                error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.2 * (attempt + 1))
                continue
            self.attempts.append(response.status_code)
            if response.status_code >= 500:
                error = response.text[:200]
                # As a careful sender does: wait what Retry-After asks (bounded), else back off a little.
                retry_after = response.headers.get("Retry-After", "")
                time.sleep(min(float(retry_after), 5.0) if retry_after.isdigit() else 0.2 * (attempt + 1))
                continue
            try:
                outcome = response.json().get("status")
            except ValueError:
                outcome = None
            return Sent(envelope["event_id"], envelope["source"], response.status_code, outcome,
                        "" if response.status_code == 202 else response.text[:300])
        return Sent(envelope["event_id"], envelope["source"], None, None, error)

    def send_all(self, envelopes: list[dict], *, on_progress: Callable[[int], None] | None = None) -> float:
        """Send in order, spread over the connections; returns the elapsed seconds."""
        lock = threading.Lock()
        position = iter(range(len(envelopes)))
        results: list[Sent | None] = [None] * len(envelopes)

        def work():
            with requests.Session() as session:
                for _ in range(len(envelopes)):
                    with lock:
                        index = next(position, None)
                    if index is None:
                        return
                    results[index] = self._post(session, envelopes[index])
                    if on_progress is not None:
                        on_progress(index)

        started = time.monotonic()
        threads = [threading.Thread(target=work, name=f"sender-{i}", daemon=True) for i in range(self.connections)]
        for thread in threads:
            thread.start()
        deadline = started + max(120.0, len(envelopes) * 0.5)
        for thread in threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        elapsed = time.monotonic() - started
        if any(thread.is_alive() for thread in threads):
            raise AssertionError(f"sending did not finish within {deadline - started:.0f} s")
        self.results.extend(r for r in results if r is not None)
        return elapsed

    def outcomes(self) -> Counter:
        return Counter(r.outcome or f"http {r.status} {r.error[:80]}" for r in self.results)


# --- draining -----------------------------------------------------------------------

def backlog() -> dict[str, int]:
    from targets.models import OutboxMessage
    from webhooks.models import InboxEvent

    return {
        "inbox_unfinished": InboxEvent.objects.filter(status__in=InboxEvent.UNFINISHED).count(),
        "outbox_active": OutboxMessage.objects.filter(
            status__in=[OutboxMessage.Status.PENDING, OutboxMessage.Status.IN_FLIGHT]).count(),
    }


def drain(*, env: dict[str, str], timeout: float, sweep_every: float = 15.0, quiet_for: float = 2.0,
          log: Callable[[str], None] = print) -> float:
    """Wait until inbox and outbox are empty (and stay so for `quiet_for` s); sweep every `sweep_every` s.

    Returns the seconds it took; fails after `timeout`.
    """
    started = time.monotonic()
    deadline = started + timeout
    next_sweep = started + sweep_every
    empty_since = None
    last_report = started
    while True:
        now = time.monotonic()
        state = backlog()
        if not any(state.values()):
            empty_since = empty_since or now
            if now - empty_since >= quiet_for:
                return now - started
        else:
            empty_since = None
        if now > deadline:
            raise AssertionError(f"not drained after {timeout:.0f} s: {state}")
        if now >= next_sweep:
            log(f"  drain +{now - started:5.1f}s {state} sweep {sweep(env)}")
            next_sweep = time.monotonic() + sweep_every
        elif now - last_report >= 10:
            log(f"  drain +{now - started:5.1f}s {state}")
            last_report = now
        time.sleep(0.5)


# --- workload --------------------------------------------------------------------

SOURCES = ("shop", "crm", "support")
LOCALES = ("de-DE", "en-GB", "fr-FR", "de-AT", "it-IT")
FIRST = ("Max", "Anna", "Jonas", "Lea", "Noah", "Mia", "Elias", "Emma")
LAST = ("Mustermann", "Schmidt", "Müller", "Weber", "Wagner", "Becker")
CITIES = (("10115", "Berlin", "DE"), ("1010", "Wien", "AT"), ("8001", "Zürich", "CH"), ("80331", "München", "DE"))


def customer_ids(index: int) -> dict[str, str]:
    """Every event of a customer carries all three ids, so identity never needs a merge."""
    return {"shop": str(100000 + index), "crm": f"C-{index}", "support": f"T{index}"}


def _address(rng, kind: str, index: int) -> dict:
    postal, city, country = rng.choice(CITIES)
    return {"type": kind, "line1": f"{rng.choice(['Hauptstr.', 'Ring', 'Gasse'])} {rng.randint(1, 99)}",
            "line2": rng.choice([None, f"c/o {index}"]), "postal_code": postal, "city": city, "country": country}


def _fields(rng, index: int, source: str, *, null_rate: float, consent: bool) -> dict:
    """A random PATCH: a subset of the fields, values varying by source so that rules matter."""
    fields = {}
    if rng.random() < 0.6:
        raw = f"c{index}.{source}{rng.randint(1, 3)}@example.com"
        fields["email"] = rng.choice([raw, f"  {raw.upper()} ", raw.capitalize()])  # normalization: trim + lower
    if rng.random() < 0.4:
        fields["phone"] = f"+49151{index:04d}{rng.randint(0, 9999):04d}"
    for name, pool in (("first_name", FIRST), ("last_name", LAST)):
        if rng.random() < 0.5:
            fields[name] = None if rng.random() < null_rate else rng.choice(pool)
    if rng.random() < 0.3:
        fields["locale"] = rng.choice(LOCALES)
    if rng.random() < 0.25:
        fields["addresses"] = [_address(rng, kind, index) for kind in ("billing", "shipping") if rng.random() < 0.7]
        if not fields["addresses"]:
            del fields["addresses"]  # [] would clear both types: keep the workload simple
    if consent and rng.random() < 0.3:
        opt_in = rng.random() < 0.5
        fields["marketing_opt_in"] = opt_in
        fields["marketing_opt_in_at"] = f"2026-01-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
    if not fields:
        fields["first_name"] = rng.choice(FIRST)
    return fields


def _data(schema_version: int, ids: dict[str, str], fields: dict) -> dict:
    if schema_version == 1:
        data = {"shop_id": int(ids["shop"]), "crm_id": ids["crm"], "support_id": ids["support"]}
        data.update(fields)
        return data
    data: dict = {"ids": dict(ids)}
    contact = {k: fields[k] for k in ("email", "phone") if k in fields}
    if contact:
        data["contact"] = contact
    name = {v2: fields[k] for k, v2 in (("first_name", "given"), ("last_name", "family")) if k in fields}
    if name:
        data["name"] = name
    for key in ("locale", "addresses"):
        if key in fields:
            data[key] = fields[key]
    if "marketing_opt_in" in fields:
        data["consent"] = {"marketing": {"opt_in": fields["marketing_opt_in"], "at": fields["marketing_opt_in_at"]}}
    return data


def workload(*, rng, customers: int, events: int, duplicate_rate: float, v2_sources=("support",),
             null_rate: float = 0.03, tie_rate: float = 0.05, consent: bool = True) -> tuple[list[dict], list[dict]]:
    """(unique envelopes, envelopes to send: the unique ones plus duplicates, shuffled).

    occurred_at is random over ten days, unrelated to the send order (out of
    order by construction); a share of events reuse the occurred_at of an
    earlier event of the same customer and source (ties, decided by event id).
    """
    from datetime import datetime, timedelta, timezone

    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    unique: list[dict] = []
    last_at: dict[tuple[int, str], str] = {}
    for n in range(events):
        index = rng.randrange(customers)
        source = rng.choice(SOURCES)
        if (index, source) in last_at and rng.random() < tie_rate:
            occurred_at = last_at[(index, source)]
        else:
            occurred_at = (base + timedelta(seconds=rng.randrange(10 * 86400))).strftime("%Y-%m-%dT%H:%M:%SZ")
        last_at[(index, source)] = occurred_at
        version = 2 if source in v2_sources else 1
        unique.append({
            "event_id": f"{source}-{n:06d}", "source": source, "schema_version": version,
            "type": "customer.upsert", "occurred_at": occurred_at,
            "data": _data(version, customer_ids(index), _fields(rng, index, source, null_rate=null_rate,
                                                                  consent=consent)),
        })
    duplicates = rng.sample(unique, int(len(unique) * duplicate_rate))
    sends = unique + [dict(e) for e in duplicates]
    rng.shuffle(sends)
    return unique, sends


# --- set-up in the test database ------------------------------------------------------

SOURCE_SECRETS = {
    "shop": SourceSpec("shop", "hmac-sha256", "harness-shop-secret-0001"),
    "crm": SourceSpec("crm", "hmac-sha256", "harness-crm-secret-0001"),
    "support": SourceSpec("support", "standard-webhooks",
                          "whsec_aGFybmVzcy1zdXBwb3J0LXNlY3JldC0wMDAxLWJ5dGVzIQ=="),
}


def sources_create(specs: dict[str, SourceSpec] = SOURCE_SECRETS) -> dict[str, str]:
    """Create the sources (secrets as ${VAR} references); returns the variables the gateway needs."""
    from webhooks.models import Source

    env = {}
    for spec in specs.values():
        variable = f"HARNESS_{spec.name.upper()}_SECRET"
        Source.objects.create(name=spec.name, signature_scheme=spec.scheme, secret_refs=[f"${{{variable}}}"],
                              schema_versions=[1, 2], default_region="DE")
        env[variable] = spec.secret
    return env


def rules_set(rules: dict[str, tuple[str, list[str]]]) -> None:
    """Field rules as data (a transactional test starts with empty tables, without the migration's rows)."""
    from canonical.models import SourcePriorityRule

    for name, (strategy, sources) in rules.items():
        SourcePriorityRule.objects.update_or_create(field=name, defaults={"strategy": strategy, "sources": sources})


# --- checks --------------------------------------------------------------------------

def target_state(sandbox, system: str, customer_id: int):
    """What the sandbox holds for a customer: the record (cdp, crm) or the last applied event's data (webhook)."""
    if system != "webhook":
        return sandbox.state.record(system, customer_id)
    with sandbox.state.lock:
        events = [e["event"]["data"] for e in sandbox.state.webhook_events
                  if int(e["event"]["data"]["id"]) == customer_id]
    return max(events, key=lambda d: d["version"]) if events else None


def without_volatile(body: dict | None) -> dict | None:
    if body is None:
        return None
    body = {k: v for k, v in body.items() if k != "updated_at"}
    if isinstance(body.get("meta"), dict):
        body["meta"] = {k: v for k, v in body["meta"].items() if k != "updated_at"}
    return body


def assert_targets_hold_golden(sandbox, targets) -> dict:
    """Every target holds exactly the mapped golden snapshot; versions only ever went up."""
    from canonical.models import Customer
    from canonical.selectors import customer_snapshot
    from targets.adapters import adapter_for

    counts = Counter()
    customers = list(Customer.objects.prefetch_related("external_ids").order_by("pk"))
    for target in targets:
        adapter = adapter_for(target)
        for customer in customers:
            expected = adapter.build_body(customer_snapshot(customer=customer))
            held = target_state(sandbox, target.kind, customer.pk)
            assert without_volatile(held) == without_volatile(expected), (target.name, customer.pk)
            versions = sandbox.state.versions_for(target.kind, customer.pk)
            assert versions == sorted(set(versions)), (target.name, customer.pk, versions)  # never backwards
            assert versions[-1] == customer.version
            counts[target.name] += 1
    return dict(counts)


def assert_rate_limits(sandbox, targets) -> dict:
    """Every request the sandbox saw (failed ones too): at most the limit in any sliding 60 s window."""
    from targets.models import TargetRuntime

    figures = {}
    for target in targets:
        times = [r["t"] for r in sandbox.state.requests_for(target.kind)]
        busiest = max_in_window(times, 60.0)
        waits = TargetRuntime.objects.filter(target=target).values_list("rate_limit_waits", flat=True).first()
        figures[target.name] = {"requests": len(times), "max_in_60s": busiest, "limit": target.rate_limit_per_minute,
                                "limiter_waits": waits}
        if target.rate_limit_per_minute:
            assert busiest <= target.rate_limit_per_minute, figures[target.name]
    return figures
