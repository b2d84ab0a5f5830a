"""The attack suite's world: two sources (one per signature scheme) with distinctive secrets, signed posts.

Secret values are deliberately recognisable so that a leak into a page, a
response or a log line is found by a plain substring search.
"""

import base64
import os
import random
from functools import partial

import pytest

from webhooks.models import Source
from webhooks import testing

URL = "/webhooks/customer"

SHOP_SECRET = "sec-shop-hmac-Q7xV9pLm2ZrT4wYb"
SHOP_SECRET_NEW = "sec-shop-hmac-rotated-K3nJ8sHd5FgA"
SUPPORT_SECRET = "whsec_" + base64.b64encode(b"sec-support-stdwh-Zp4Lq8Wm1Xc6Vb").decode()
SUPPORT_SECRET_OLD = "whsec_" + base64.b64encode(b"sec-support-stdwh-old-Hn2Rt7Yu9K").decode()

SECRETS_ENV = {
    "SEC_SHOP_SECRET": SHOP_SECRET,
    "SEC_SHOP_SECRET_NEW": SHOP_SECRET_NEW,
    "SEC_SUPPORT_SECRET": SUPPORT_SECRET,
    "SEC_SUPPORT_SECRET_OLD": SUPPORT_SECRET_OLD,
}


def seeded_rng(name: str) -> random.Random:
    """A Random seeded from SECURITY_SEED (or a fresh seed), printed so a failure can be replayed."""
    seed = int(os.environ.get("SECURITY_SEED") or random.randrange(2**32))
    print(f"{name}: SECURITY_SEED={seed}")
    return random.Random(seed)










@pytest.fixture
def secrets_env(monkeypatch):
    for name, value in SECRETS_ENV.items():
        monkeypatch.setenv(name, value)
    return SECRETS_ENV


@pytest.fixture
def shop(db, secrets_env):
    return Source.objects.create(name="shop", secret_refs=["${SEC_SHOP_SECRET}"])


@pytest.fixture
def support(db, secrets_env):
    return Source.objects.create(
        name="support", signature_scheme=Source.SignatureScheme.STANDARD_WEBHOOKS,
        secret_refs=["${SEC_SUPPORT_SECRET_OLD}", "${SEC_SUPPORT_SECRET}"], schema_versions=[1, 2],
    )


@pytest.fixture
def post(client):
    """post(body, headers=None): POST bytes or a dict, signed for shop unless headers are given."""

    def _post(value, *, headers=None, content_type="application/json", **extra):
        body = body_of(value)
        if headers is None:
            headers = hmac_headers(body)
        return client.generic("POST", URL, body, content_type=content_type, headers=headers, **extra)

    return _post


@pytest.fixture
def no_enqueue(monkeypatch):
    """The gateway enqueues processing after commit; these tests look at rows, not at a worker."""
    monkeypatch.setattr("django_q.tasks.async_task", lambda *args, **kwargs: None)


event = testing.sample_event
body_of = testing.body_of


# Signed headers with this suite's secrets (each keyword can still be passed).
hmac_headers = partial(testing.hmac_headers, secret=SHOP_SECRET)
standard_headers = partial(testing.standard_headers, secret=SUPPORT_SECRET, msg_id="msg_sec_1")
