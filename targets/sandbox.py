"""Sandbox targets: an in-memory cdp, crm, webhook receiver and OAuth2 token endpoint.

A stdlib `ThreadingHTTPServer` that speaks DESIGN.md's target contract, for
the demo (`manage.py run_sandbox_targets`) and for tests (`Sandbox(...).start()`
on an ephemeral port). It checks credentials, honours idempotency keys (a
repeated key is answered from the cache and applies nothing), records every
request (never a credential), the effects and, per (system, customer), the
golden versions applied in order, and injects faults on demand.

Routes: `POST /cdp/customers/upsert`, `DELETE /cdp/customers/{id}`,
`GET /cdp/customers?cursor=&limit=`; `PUT /crm/v1/contacts`,
`DELETE /crm/v1/contacts/{id}`, `GET /crm/v1/contacts?page=&per_page=`;
`POST /webhook/{name}` (Standard Webhooks); `POST /oauth/token`.
Control (no auth; bind to 127.0.0.1): `GET /_sandbox/requests[?system=]`,
`GET /_sandbox/state`, `POST /_sandbox/faults`, `POST /_sandbox/reset`,
`POST /_sandbox/oauth/revoke`.
"""

import base64
import hmac
import json
import random
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SYSTEMS = ("cdp", "crm", "webhook", "oauth")
FAULT_KEYS = {"fail_rate", "fail_statuses", "retry_after", "latency_ms", "hang_seconds", "down_until",
              "force_status", "plan", "poison"}


@dataclass
class SandboxCredentials:
    """Expected credentials; None refuses every request of that kind."""

    cdp_token: str | None = None
    crm_api_key: str | None = None
    webhook_secret: str | None = None  # whsec_...
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = None
    oauth_token_lifetime: int = 3600


@dataclass
class Faults:
    fail_rate: float = 0.0
    fail_statuses: list[int] = field(default_factory=lambda: [503])
    retry_after: str | None = None
    latency_ms: int = 0
    hang_seconds: float = 0.0  # sleep before answering (client timeouts); the request is then processed
    down_until: float = 0.0  # unix time; until then connections are dropped without an answer
    force_status: int | None = None
    plan: deque = field(default_factory=deque)  # one entry per request: {"status", "retry_after", "hang", "close"}
    poison: dict = field(default_factory=dict)  # golden id (str) -> status answered to every request for it


def _customer_of(entry: dict) -> str | None:
    """The golden id a request is about: the cdp body's id, the crm body's externalIds.custsync_id, a DELETE's path."""
    body = entry.get("body")
    if isinstance(body, dict):
        if body.get("id") is not None:
            return str(body["id"])
        ids = body.get("externalIds")
        if isinstance(ids, dict) and ids.get("custsync_id") is not None:
            return str(ids["custsync_id"])
    if entry.get("method") == "DELETE":
        return entry["path"].rstrip("/").rsplit("/", 1)[-1]
    return None


class SandboxState:
    """Everything the sandbox holds; every access under one lock."""

    def __init__(self, *, seed: int | None = None):
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.stores: dict[str, dict[int, dict]] = {"cdp": {}, "crm": {}}
            self.webhook_events: list[dict] = []
            self.idempotency: dict[tuple[str, str], tuple[int, Any]] = {}
            self.effects: list[dict] = []
            self.versions: dict[tuple[str, int], list[int]] = {}
            self.requests: list[dict] = []
            self.faults: dict[str, Faults] = {}
            self.oauth_tokens: dict[str, float] = {}
            self.tokens_issued = 0

    def set_faults(self, system: str = "*", **knobs) -> None:
        unknown = set(knobs) - FAULT_KEYS
        if unknown:
            raise ValueError(f"unknown fault knobs: {sorted(unknown)}")
        with self.lock:
            faults = self.faults.setdefault(system, Faults())
            for key, value in knobs.items():
                setattr(faults, key, deque(value) if key == "plan" else value)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults = {}

    # --- reads for tests -------------------------------------------------
    def requests_for(self, system: str | None = None) -> list[dict]:
        with self.lock:
            return [dict(r) for r in self.requests if system is None or r["system"] == system]

    def effects_for(self, system: str | None = None) -> list[dict]:
        with self.lock:
            return [dict(e) for e in self.effects if system is None or e["system"] == system]

    def versions_for(self, system: str, customer_id: int) -> list[int]:
        with self.lock:
            return list(self.versions.get((system, int(customer_id)), []))

    def record(self, system: str, customer_id: int) -> dict | None:
        with self.lock:
            value = self.stores.get(system, {}).get(int(customer_id))
            return json.loads(json.dumps(value)) if value is not None else None

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "cdp": {str(k): v for k, v in self.stores["cdp"].items()},
                "crm": {str(k): v for k, v in self.stores["crm"].items()},
                "webhook_events": list(self.webhook_events),
                "versions": {f"{s}:{c}": v for (s, c), v in self.versions.items()},
                "effects": {s: sum(1 for e in self.effects if e["system"] == s) for s in ("cdp", "crm", "webhook")},
                "requests": len(self.requests),
                "tokens_issued": self.tokens_issued,
            }


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Small responses on keep-alive connections: without TCP_NODELAY each waits ~40 ms for delayed ACKs.
    disable_nagle_algorithm = True
    server_version = "custsync-sandbox/1.0"

    # quiet: tests and the demo read the request log instead
    def log_message(self, format, *args):  # noqa: A002
        return

    @property
    def sandbox(self) -> "Sandbox":
        return self.server.sandbox  # type: ignore[attr-defined]

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # --- plumbing ------------------------------------------------------------
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any = None, headers: dict | None = None) -> None:
        data = b"" if body is None or status == 204 else _json_bytes(body)
        try:
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if data:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (an injected timeout): the effect is recorded, the answer has nowhere to go.
            self.close_connection = True

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        raw = self._read_body()
        if parts[:1] == ["_sandbox"]:
            return self._control(method, parts[1:], query, raw)
        system = parts[0] if parts and parts[0] in SYSTEMS else None
        if system is None:
            return self._send(404, {"error": "no such route"})
        entry = {
            "t": time.time(), "system": system, "method": method, "path": url.path, "query": query,
            "idempotency_key": self.headers.get("Idempotency-Key"),
            "correlation_id": self.headers.get("X-Correlation-ID"),
            "version_header": self.headers.get("X-Custsync-Version"),
            "content_type": self.headers.get("Content-Type"),
            "auth": None, "auth_ok": False, "status": None, "replayed": False, "fault": None,
            "customer_id": None, "version": None, "body": None,
        }
        try:
            entry["body"] = json.loads(raw) if raw and system != "oauth" else None
        except ValueError:
            entry["body"] = None
        with self.state.lock:
            self.state.requests.append(entry)
        if self._inject_fault(system, entry):
            return
        handler = {"cdp": self._cdp, "crm": self._crm, "webhook": self._webhook, "oauth": self._oauth}[system]
        status, body, headers = handler(method, parts[1:], query, raw, entry)
        entry["status"] = status
        self._send(status, body, headers)

    def _inject_fault(self, system: str, entry: dict) -> bool:
        """Apply the configured faults; True when the request was answered (or dropped) by one."""
        with self.state.lock:
            faults = [self.state.faults[k] for k in (system, "*") if k in self.state.faults]
            step = None
            for f in faults:
                if f.plan:
                    step = f.plan.popleft()
                    break
            now = time.time()
            down = any(f.down_until > now for f in faults)
            hang = max([f.hang_seconds for f in faults] + [float((step or {}).get("hang", 0))])
            latency = max([f.latency_ms for f in faults] + [0]) / 1000.0
            status, retry_after = None, None
            poisoned = [f.poison[c] for f in faults if f.poison for c in [_customer_of(entry)] if c in f.poison]
            if poisoned:
                status = int(poisoned[0])
            elif step and step.get("status"):
                status, retry_after = int(step["status"]), step.get("retry_after")
            else:
                for f in faults:
                    if f.force_status:
                        status, retry_after = f.force_status, f.retry_after
                        break
                    if f.fail_rate and self.state.rng.random() < f.fail_rate:
                        status, retry_after = self.state.rng.choice(f.fail_statuses), f.retry_after
                        break
        if down or (step and step.get("close")):
            entry["fault"] = "dropped"
            self.close_connection = True
            return True
        if hang or latency:
            self.sandbox.stopping.wait(hang + latency)
            if hang:
                entry["fault"] = f"hang {hang:g}s"
        if status is not None:
            entry["fault"] = entry["fault"] or f"status {status}"
            entry["status"] = status
            self._send(status, {"error": "injected fault", "status": status},
                       {"Retry-After": str(retry_after)} if retry_after is not None else None)
            return True
        return False

    # --- auth ------------------------------------------------------------------
    def _token_valid(self, token: str) -> bool:
        with self.state.lock:
            expiry = self.state.oauth_tokens.get(token)
        return expiry is not None and expiry > time.time()

    def _check_auth(self, system: str, entry: dict) -> bool:
        creds = self.sandbox.credentials
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        entry["auth"] = scheme.lower() or None
        ok = False
        if scheme == "Bearer" and value:
            if self._token_valid(value):
                entry["auth"], ok = "oauth2", True
            elif system == "cdp" and creds.cdp_token:
                ok = hmac.compare_digest(value, creds.cdp_token)
        elif scheme == "ApiKey" and value and system == "crm" and creds.crm_api_key:
            ok = hmac.compare_digest(value, creds.crm_api_key)
        entry["auth_ok"] = ok
        return ok

    # --- upsert / delete / list ---------------------------------------------
    def _apply(self, system: str, key: str | None, entry: dict, customer_id: int, version: int | None,
               apply) -> tuple[int, Any, dict]:
        """Apply once per idempotency key; a repeated key answers the cached response."""
        if not key:
            return 400, {"error": "Idempotency-Key header required"}, {}
        with self.state.lock:
            cached = self.state.idempotency.get((system, key))
            if cached is not None:
                entry["replayed"] = True
                return cached[0], cached[1], {"Idempotent-Replayed": "true"}
            status, body = apply()
            if 200 <= status < 300:
                self.state.idempotency[(system, key)] = (status, body)
                self.state.effects.append({"system": system, "customer_id": customer_id, "version": version,
                                           "key": key, "method": entry["method"], "t": time.time()})
                if version is not None:
                    self.state.versions.setdefault((system, customer_id), []).append(version)
            return status, body, {}

    def _version(self, body_version: Any) -> int | None:
        value = body_version if body_version is not None else self.headers.get("X-Custsync-Version")
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    def _upsert(self, system: str, record: Any, customer_id: Any, body_version: Any, entry: dict):
        if not isinstance(record, dict):
            return 400, {"error": "body must be a JSON object"}, {}
        try:
            customer_id = int(customer_id)
        except (TypeError, ValueError):
            return 422, {"error": "record has no custsync id"}, {}
        version = self._version(body_version)
        entry["customer_id"], entry["version"] = customer_id, version
        store = self.state.stores[system]

        def apply():
            created = customer_id not in store
            store[customer_id] = record
            return (201 if created else 200), {"id": customer_id, "status": "created" if created else "updated"}

        return self._apply(system, entry["idempotency_key"], entry, customer_id, version, apply)

    def _delete(self, system: str, raw_id: str, entry: dict):
        try:
            customer_id = int(raw_id)
        except ValueError:
            return 404, {"error": "not found"}, {}
        entry["customer_id"], entry["version"] = customer_id, self._version(None)
        store = self.state.stores[system]

        def apply():
            if store.pop(customer_id, None) is None:
                return 404, {"error": "not found"}
            return 204, None

        return self._apply(system, entry["idempotency_key"], entry, customer_id, entry["version"], apply)

    def _cdp(self, method, parts, query, raw, entry):
        if not self._check_auth("cdp", entry):
            return 401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"}
        if method == "POST" and parts == ["customers", "upsert"]:
            record = entry["body"]
            meta = record.get("meta") if isinstance(record, dict) and isinstance(record.get("meta"), dict) else {}
            return self._upsert("cdp", record, record.get("id") if isinstance(record, dict) else None,
                                meta.get("version"), entry)
        if method == "DELETE" and len(parts) == 2 and parts[0] == "customers":
            return self._delete("cdp", parts[1], entry)
        if method == "GET" and parts == ["customers"]:
            limit = max(1, min(int(query.get("limit") or 100), 1000))
            after = int(query.get("cursor") or 0)
            with self.state.lock:
                ids = sorted(i for i in self.state.stores["cdp"] if i > after)
                page = ids[:limit]
                items = [self.state.stores["cdp"][i] for i in page]
            next_cursor = str(page[-1]) if len(ids) > limit else None
            return 200, {"items": items, "next_cursor": next_cursor}, {}
        return 404, {"error": "no such route"}, {}

    def _crm(self, method, parts, query, raw, entry):
        if not self._check_auth("crm", entry):
            return 401, {"error": "unauthorized"}, {"WWW-Authenticate": "ApiKey"}
        if method == "PUT" and parts == ["v1", "contacts"]:
            record = entry["body"]
            ids = record.get("externalIds") if isinstance(record, dict) else None
            customer_id = ids.get("custsync_id") if isinstance(ids, dict) else None
            return self._upsert("crm", record, customer_id, None, entry)
        if method == "DELETE" and len(parts) == 3 and parts[:2] == ["v1", "contacts"]:
            return self._delete("crm", parts[2], entry)
        if method == "GET" and parts == ["v1", "contacts"]:
            page = max(1, int(query.get("page") or 1))
            per_page = max(1, min(int(query.get("per_page") or 100), 1000))
            with self.state.lock:
                ids = sorted(self.state.stores["crm"])
                chunk = ids[(page - 1) * per_page: page * per_page]
                results = [self.state.stores["crm"][i] for i in chunk]
            next_page = page + 1 if len(ids) > page * per_page else None
            return 200, {"results": results, "next_page": next_page}, {}
        return 404, {"error": "no such route"}, {}

    def _webhook(self, method, parts, query, raw, entry):
        if method != "POST":
            return 405, {"error": "POST only"}, {}
        secret = self.sandbox.credentials.webhook_secret
        entry["auth"] = "standard_webhooks"
        try:
            if not secret:
                raise WebhookVerificationError("no secret configured")
            event = Webhook(secret).verify(raw, {k: v for k, v in self.headers.items()})
        except (WebhookVerificationError, ValueError):
            return 401, {"error": "invalid signature"}, {}
        entry["auth_ok"] = True
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict) or event.get("type") not in ("customer.changed", "customer.deleted"):
            return 422, {"error": "unexpected event"}, {}
        customer_id = int(data.get("id"))
        version = self._version(data.get("version"))
        entry["customer_id"], entry["version"] = customer_id, version
        entry["idempotency_key"] = self.headers.get("webhook-id")

        def apply():
            with self.state.lock:
                self.state.webhook_events.append({"path": "/" + "/".join(parts), "event": event})
            return 204, None

        return self._apply("webhook", entry["idempotency_key"], entry, customer_id, version, apply)

    def _oauth(self, method, parts, query, raw, entry):
        creds = self.sandbox.credentials
        if method != "POST" or parts != ["token"]:
            return 404, {"error": "no such route"}, {}
        form = {k: v[-1] for k, v in parse_qs(raw.decode(errors="replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        header = self.headers.get("Authorization") or ""
        if header.startswith("Basic "):
            try:
                client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                client_id = client_secret = None
        entry["auth"] = "client_credentials"
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}, {}
        ok = bool(creds.oauth_client_id and creds.oauth_client_secret and client_id and client_secret
                  and hmac.compare_digest(client_id, creds.oauth_client_id)
                  and hmac.compare_digest(client_secret, creds.oauth_client_secret))
        entry["auth_ok"] = ok
        if not ok:
            return 401, {"error": "invalid_client"}, {}
        token = secrets.token_urlsafe(24)
        with self.state.lock:
            self.state.oauth_tokens[token] = time.time() + creds.oauth_token_lifetime
            self.state.tokens_issued += 1
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": creds.oauth_token_lifetime}, {}

    # --- control -----------------------------------------------------------------
    def _control(self, method, parts, query, raw):
        state = self.state
        if method == "GET" and parts == ["requests"]:
            return self._send(200, {"requests": state.requests_for(query.get("system"))})
        if method == "GET" and parts == ["state"]:
            return self._send(200, state.snapshot())
        if method == "POST" and parts == ["reset"]:
            state.reset()
            return self._send(200, {"ok": True})
        if method == "POST" and parts == ["oauth", "revoke"]:
            with state.lock:
                state.oauth_tokens.clear()
            return self._send(200, {"ok": True})
        if method == "POST" and parts == ["faults"]:
            try:
                knobs = json.loads(raw or b"{}")
                if knobs.pop("clear", False):
                    state.clear_faults()
                system = knobs.pop("system", "*")
                if "down_for_seconds" in knobs:
                    knobs["down_until"] = time.time() + float(knobs.pop("down_for_seconds"))
                state.set_faults(system, **knobs)
            except (ValueError, TypeError, AttributeError) as exc:
                return self._send(400, {"error": str(exc)})
            return self._send(200, {"ok": True})
        return self._send(404, {"error": "no such control route"})


class Sandbox:
    """The sandbox server; `start()` binds (port 0 = ephemeral) and serves in a thread."""

    def __init__(self, *, credentials: SandboxCredentials, host: str = "127.0.0.1", port: int = 0,
                 seed: int | None = None):
        self.credentials = credentials
        self.host = host
        self.port = port
        self.state = SandboxState(seed=seed)
        self.stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "Sandbox":
        self.stopping.clear()
        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer((self.host, self.port), _Handler)
        server.sandbox = self  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (clients then see connection refused); state is kept for `start()` again."""
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
