"""Request authentication per target: bearer, API key, OAuth2 client credentials, Standard Webhooks.

Secrets are resolved from `${VAR}` references at the moment of use and never
logged. OAuth2 access tokens are cached in process memory per target until
shortly before they expire; a 401 invalidates the cache once (see adapters).
"""

import base64
import threading
import time
from datetime import datetime, timezone

import requests
from standardwebhooks.webhooks import Webhook

from core.secrets import is_reference, resolve

from .delivery import is_retryable_status
from .models import Target, TargetsError


class TargetAuthError(TargetsError):
    """Credentials could not be obtained (token endpoint failed, variable unset)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        self.status = status
        self.retryable = retryable
        super().__init__(message)


def _secret(target: Target, key: str) -> str:
    reference = (target.secret_refs or {}).get(key)
    if not reference:
        raise TargetAuthError(f"target {target.name} has no secret reference '{key}'")
    return resolve(reference)


class Auth:
    """Adds credentials to a request's headers."""

    refreshable = False

    def __init__(self, target: Target):
        self.target = target

    def apply(self, headers: dict[str, str], *, body: bytes, message_id: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def invalidate(self) -> None:
        """Forget cached credentials (after a 401)."""


class NoAuth(Auth):
    def apply(self, headers, *, body, message_id):
        return None


class BearerAuth(Auth):
    def apply(self, headers, *, body, message_id):
        headers["Authorization"] = f"Bearer {_secret(self.target, 'token')}"


class ApiKeyAuth(Auth):
    def apply(self, headers, *, body, message_id):
        headers["Authorization"] = f"ApiKey {_secret(self.target, 'api_key')}"


class StandardWebhooksAuth(Auth):
    """Signs the exact body bytes; `webhook-id` is the idempotency key."""

    def apply(self, headers, *, body, message_id):
        signer = Webhook(_secret(self.target, "secret"))
        now = datetime.now(tz=timezone.utc)
        headers["webhook-id"] = message_id
        headers["webhook-timestamp"] = str(int(now.timestamp()))
        headers["webhook-signature"] = signer.sign(msg_id=message_id, timestamp=now, data=body.decode())


# (target id, token url, client id) -> (access token, monotonic expiry)
_token_cache: dict[tuple, tuple[str, float]] = {}
_token_lock = threading.Lock()
TOKEN_EXPIRY_MARGIN_SECONDS = 30
DEFAULT_TOKEN_LIFETIME_SECONDS = 300


class OAuth2ClientCredentials(Auth):
    refreshable = True

    def __init__(self, target: Target, *, session: requests.Session | None = None):
        super().__init__(target)
        self.session = session or requests.Session()

    def _client_id(self) -> str:
        value = self.target.oauth_client_id
        return resolve(value) if is_reference(value) else value

    def _cache_key(self) -> tuple:
        return (self.target.pk, self.target.oauth_token_url, self.target.oauth_client_id)

    def token(self) -> str:
        key = self._cache_key()
        with _token_lock:
            cached = _token_cache.get(key)
            if cached and cached[1] > time.monotonic():
                return cached[0]
        token, lifetime = self._fetch()
        with _token_lock:
            _token_cache[key] = (token, time.monotonic() + max(1.0, lifetime - TOKEN_EXPIRY_MARGIN_SECONDS))
        return token

    def _fetch(self) -> tuple[str, float]:
        client_id = self._client_id()
        client_secret = _secret(self.target, "client_secret")
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        data = {"grant_type": "client_credentials"}
        if self.target.oauth_scope:
            data["scope"] = self.target.oauth_scope
        try:
            response = self.session.post(
                self.target.oauth_token_url, data=data, headers={"Authorization": f"Basic {basic}"},
                timeout=self.target.timeout_seconds,
            )
        except requests.RequestException as exc:
            raise TargetAuthError(f"token endpoint unreachable: {type(exc).__name__}", retryable=True) from exc
        if response.status_code != 200:
            raise TargetAuthError(f"token endpoint answered {response.status_code}", status=response.status_code,
                                  retryable=is_retryable_status(response.status_code))
        try:
            payload = response.json()
            token = payload["access_token"]
            lifetime = float(payload.get("expires_in") or DEFAULT_TOKEN_LIFETIME_SECONDS)
        except (ValueError, KeyError, TypeError) as exc:
            raise TargetAuthError("token endpoint answered without access_token", status=200) from exc
        return token, lifetime

    def apply(self, headers, *, body, message_id):
        headers["Authorization"] = f"Bearer {self.token()}"

    def invalidate(self) -> None:
        with _token_lock:
            _token_cache.pop(self._cache_key(), None)


def auth_for(target: Target, *, session: requests.Session | None = None) -> Auth:
    kinds = {
        Target.AuthKind.BEARER: BearerAuth,
        Target.AuthKind.API_KEY: ApiKeyAuth,
        Target.AuthKind.STANDARD_WEBHOOKS: StandardWebhooksAuth,
        Target.AuthKind.NONE: NoAuth,
    }
    if target.auth_kind == Target.AuthKind.OAUTH2:
        return OAuth2ClientCredentials(target, session=session)
    return kinds[target.auth_kind](target)
