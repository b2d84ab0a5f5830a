"""Helpers for tests that act as webhook senders: the sample event, its bytes, signed headers.

Used by the gateway's own tests and the attack suite; each passes its own secrets.
"""

import copy
import json
import time

from webhooks.openapi import SAMPLE_EVENT
from webhooks.signatures import hmac_sha256_sign, standard_webhooks_sign


def sample_event(**overrides) -> dict:
    """DESIGN.md's sample event (a fresh copy), with top-level fields replaced."""
    event = copy.deepcopy(SAMPLE_EVENT)
    event.update(overrides)
    return event


def body_of(value) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode("utf-8")


def hmac_headers(body: bytes, *, secret: str, timestamp: int | None = None) -> dict:
    return hmac_sha256_sign(secret=secret, timestamp=int(time.time()) if timestamp is None else timestamp, body=body)


def standard_headers(body: bytes, *, secret: str, msg_id: str = "msg_1", timestamp: int | None = None) -> dict:
    return standard_webhooks_sign(secret=secret, msg_id=msg_id, body=body,
                                  timestamp=int(time.time()) if timestamp is None else timestamp)
