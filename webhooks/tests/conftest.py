"""Fixtures for the gateway: sources with secrets from the environment, signed requests."""

import json
import time

import pytest

from webhooks.models import Source
from webhooks.signatures import hmac_sha256_sign, standard_webhooks_sign

SHOP_SECRET = "shop-secret-value-7f3a9c"  # what WEBHOOK_SECRET holds in tests; must never leak
SUPPORT_SECRET = "whsec_c3VwcG9ydC1zZWNyZXQtdmFsdWUtbmV3LTEyMzQ1Ng=="
SUPPORT_SECRET_OLD = "whsec_c3VwcG9ydC1vbGQtc2VjcmV0LXZhbHVlLTk4NzY1NA=="
URL = "/webhooks/customer"


def sample_event(**overrides) -> dict:
    event = {
        "event_id": "evt_123", "source": "shop", "schema_version": 1,
        "type": "customer.upsert", "occurred_at": "2026-01-14T10:12:00Z",
        "data": {"shop_id": 9981, "email": "Person@Example.com ", "phone": "0049 151 234567",
                 "first_name": "Max", "last_name": "Mustermann", "marketing_opt_in": True},
    }
    event.update(overrides)
    return event


def body_of(event) -> bytes:
    return event if isinstance(event, bytes) else json.dumps(event).encode("utf-8")


def hmac_headers(body: bytes, *, secret: str = SHOP_SECRET, timestamp: int | None = None) -> dict:
    return hmac_sha256_sign(secret=secret, timestamp=int(time.time()) if timestamp is None else timestamp, body=body)


def standard_headers(body: bytes, *, secret: str = SUPPORT_SECRET, msg_id: str = "msg_1",
                     timestamp: int | None = None) -> dict:
    return standard_webhooks_sign(
        secret=secret, msg_id=msg_id, timestamp=int(time.time()) if timestamp is None else timestamp, body=body,
    )


def as_meta(headers: dict) -> dict:
    """Test-client kwargs for request headers."""
    return {"headers": headers}


@pytest.fixture
def secrets_env(monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRET", SHOP_SECRET)
    monkeypatch.setenv("SUPPORT_SECRET", SUPPORT_SECRET)
    monkeypatch.setenv("SUPPORT_SECRET_OLD", SUPPORT_SECRET_OLD)


@pytest.fixture
def shop(db, secrets_env):
    return Source.objects.create(name="shop", secret_refs=["${WEBHOOK_SECRET}"])


@pytest.fixture
def support(db, secrets_env):
    return Source.objects.create(
        name="support", signature_scheme=Source.SignatureScheme.STANDARD_WEBHOOKS,
        secret_refs=["${SUPPORT_SECRET_OLD}", "${SUPPORT_SECRET}"], schema_versions=[1, 2], default_region="AT",
    )


@pytest.fixture
def post(client):
    """POST a body (dict or bytes) to the endpoint, signed for shop unless headers are given."""

    def _post(event, *, headers=None, content_type="application/json", path=URL):
        body = body_of(event)
        if headers is None:
            headers = hmac_headers(body)
        return client.generic("POST", path, body, content_type=content_type, headers=headers)

    return _post


@pytest.fixture
def plain_static(settings):
    """Admin pages without `collectstatic`: the manifest storage needs a manifest that tests do not build."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
