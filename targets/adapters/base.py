"""The adapter interface: one subclass per target kind, registered by kind.

An adapter turns a golden snapshot into the target's request (through the
target's field mapping), sends it with auth and the idempotency headers, and
pages through the target's listing for reconciliation. It never retries or
sleeps: the delivery service decides what a response means.
"""

import json
import time
from dataclasses import dataclass
from typing import Any, Iterator

import requests

from ..auth import Auth, auth_for
from ..mapping import DEFAULT_MAPPINGS, body_build, record_to_canonical
from ..models import Target

USER_AGENT = "custsync/1.0"


@dataclass(frozen=True)
class PreparedCall:
    """What will be sent: method, URL and JSON body (None for a bodiless DELETE)."""

    method: str
    url: str
    body: Any
    state_body: dict[str, Any] | None  # the mapped record, kept as DeliveredState.body


@dataclass
class SendResult:
    status: int
    body_excerpt: str
    retry_after: str | None
    latency_ms: int


class TargetAdapter:
    kind: str = ""
    supports_listing: bool = True

    def __init__(self, target: Target, *, session: requests.Session | None = None, mappings=None):
        self.target = target
        self.session = session or requests.Session()
        self.auth: Auth = auth_for(target, session=self.session)
        self._mappings = list(mappings) if mappings is not None else None

    # --- mapping ---------------------------------------------------------
    def mappings(self) -> list[tuple[str, str]]:
        if self._mappings is None:
            rows = list(
                self.target.field_mappings.filter(enabled=True).order_by("order", "id")
                .values_list("canonical_field", "target_path")
            ) if self.target.pk else []
            self._mappings = rows or list(DEFAULT_MAPPINGS.get(self.kind, []))
        return self._mappings

    def build_body(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        return body_build(mappings=self.mappings(), snapshot=snapshot)

    def record_to_canonical(self, record: dict[str, Any]) -> dict[str, Any]:
        """A record from `iter_records` as comparable canonical fields (`id` = golden id)."""
        return record_to_canonical(mappings=self.mappings(), record=record)

    # --- requests --------------------------------------------------------
    @property
    def base(self) -> str:
        return self.target.base_url.rstrip("/")

    def prepare(self, *, snapshot: dict[str, Any], operation: str) -> PreparedCall:  # pragma: no cover - interface
        raise NotImplementedError

    def send(self, call: PreparedCall, *, idempotency_key: str, correlation_id: str, version: int) -> SendResult:
        """One HTTP request; raises `requests.RequestException` / `TargetAuthError`."""
        data = None if call.body is None else json.dumps(call.body, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Idempotency-Key": idempotency_key,
            "X-Correlation-ID": correlation_id or "",
            "X-Custsync-Version": str(version),
        }
        started = time.monotonic()
        response = self._request(call.method, call.url, data=data, headers=headers, message_id=idempotency_key)
        latency_ms = int((time.monotonic() - started) * 1000)
        return SendResult(
            status=response.status_code,
            body_excerpt=response.text[:1024],
            retry_after=response.headers.get("Retry-After"),
            latency_ms=latency_ms,
        )

    def _request(self, method: str, url: str, *, data: bytes | None = None, headers: dict | None = None,
                 params: dict | None = None, message_id: str = "") -> requests.Response:
        for first_try in (True, False):
            request_headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
            if data is not None:
                request_headers["Content-Type"] = "application/json"
            self.auth.apply(request_headers, body=data or b"", message_id=message_id)
            response = self.session.request(
                method, url, data=data, headers=request_headers, params=params,
                timeout=self.target.timeout_seconds, allow_redirects=False,
            )
            # OAuth2: a 401 may mean the cached token was revoked; refresh once and retry once.
            if response.status_code == 401 and self.auth.refreshable and first_try:
                self.auth.invalidate()
                continue
            return response
        return response  # pragma: no cover - loop always returns

    def get_json(self, url: str, params: dict) -> Any:
        response = self._request("GET", url, params=params)
        response.raise_for_status()
        return response.json()

    def iter_records(self, *, page_size: int = 100) -> Iterator[dict[str, Any]]:  # pragma: no cover - interface
        raise NotImplementedError


_registry: dict[str, type[TargetAdapter]] = {}


def register(cls: type[TargetAdapter]) -> type[TargetAdapter]:
    _registry[cls.kind] = cls
    return cls


def adapter_class(kind: str) -> type[TargetAdapter]:
    # The package's __init__ imports every built-in kind before anything can reach this module.
    try:
        return _registry[kind]
    except KeyError:
        raise LookupError(f"no adapter registered for target kind {kind!r}") from None


def adapter_for(target: Target, *, session: requests.Session | None = None) -> TargetAdapter:
    return adapter_class(target.kind)(target, session=session)
