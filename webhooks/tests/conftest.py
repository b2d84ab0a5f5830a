"""Fixtures for the gateway: sources with secrets from the environment, signed requests."""

from functools import partial

import pytest

from webhooks.models import Source
from webhooks import testing

SHOP_SECRET = "shop-secret-value-7f3a9c"  # what WEBHOOK_SECRET holds in tests; must never leak
SUPPORT_SECRET = "whsec_c3VwcG9ydC1zZWNyZXQtdmFsdWUtbmV3LTEyMzQ1Ng=="
SUPPORT_SECRET_OLD = "whsec_c3VwcG9ydC1vbGQtc2VjcmV0LXZhbHVlLTk4NzY1NA=="
URL = "/webhooks/customer"










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


sample_event = testing.sample_event
body_of = testing.body_of


# Signed headers with this suite's secrets (each keyword can still be passed).
hmac_headers = partial(testing.hmac_headers, secret=SHOP_SECRET)
standard_headers = partial(testing.standard_headers, secret=SUPPORT_SECRET, msg_id="msg_1")
