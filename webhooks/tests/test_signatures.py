"""Signature schemes against the Standard Webhooks package and the specification's test vector."""

import base64
import random
import time
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook

from webhooks.signatures import (
    HMAC_SHA256, STANDARD_WEBHOOKS, SecretFormatError, SignatureError, hmac_sha256_sign, scheme_key,
    signed_request_parse, standard_webhooks_sign,
)

# The Standard Webhooks specification's published test vector (also in the svix / standardwebhooks test suites).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def verify_standard(headers: dict, body: bytes, secrets: list[str], *, now: int) -> bool:
    signed = signed_request_parse({k.lower(): v for k, v in headers.items()}, now=now, tolerance=300)
    keys = [scheme_key(STANDARD_WEBHOOKS, s) for s in secrets]
    return signed[STANDARD_WEBHOOKS].verify(body, keys)


def test_spec_vector_verifies_and_signs():
    headers = {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIMESTAMP), "webhook-signature": SPEC_SIGNATURE}
    assert verify_standard(headers, SPEC_BODY, [SPEC_SECRET], now=SPEC_TIMESTAMP + 10)
    # the secret without its prefix is the same key
    assert verify_standard(headers, SPEC_BODY, [SPEC_SECRET.removeprefix("whsec_")], now=SPEC_TIMESTAMP)
    assert standard_webhooks_sign(secret=SPEC_SECRET, msg_id=SPEC_ID, timestamp=SPEC_TIMESTAMP,
                                  body=SPEC_BODY)["webhook-signature"] == SPEC_SIGNATURE
    assert not verify_standard(headers, SPEC_BODY + b" ", [SPEC_SECRET], now=SPEC_TIMESTAMP)


def test_spec_vector_outside_the_tolerance_is_refused():
    headers = {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIMESTAMP), "webhook-signature": SPEC_SIGNATURE}
    with pytest.raises(SignatureError, match="too old"):
        verify_standard(headers, SPEC_BODY, [SPEC_SECRET], now=SPEC_TIMESTAMP + 301)


def test_agrees_with_the_standardwebhooks_package_on_random_inputs():
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    rng = random.Random(seed)
    for _ in range(200):
        now = int(time.time())
        secret = "whsec_" + base64.b64encode(rng.randbytes(rng.randint(16, 64))).decode()
        msg_id = "msg_" + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=rng.randint(1, 30)))
        text = "".join(rng.choices('abc{}[]":, \u00e4\u20ac\U0001F600', k=rng.randint(0, 200)))
        body = text.encode("utf-8")
        ts = now + rng.randint(-250, 250)  # the package reads its own clock, a moment later
        library = Webhook(secret)
        # library signs -> we verify
        signature = library.sign(msg_id, datetime.fromtimestamp(ts, tz=timezone.utc), text)
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}
        assert verify_standard(headers, body, [secret], now=now), seed
        # we sign -> library verifies
        ours = standard_webhooks_sign(secret=secret, msg_id=msg_id, timestamp=ts, body=body)
        assert ours["webhook-signature"] == signature
        library.verify(body, ours, json_parse=False)  # raises on mismatch
        # and a flipped body byte fails for both
        if body:
            tampered = bytes([body[0] ^ 1]) + body[1:]
            assert not verify_standard(headers, tampered, [secret], now=now)


def test_invalid_utf8_bodies_verify_over_bytes_where_the_package_would_crash():
    body = b'{"x": "\xff\xfe"}'
    headers = standard_webhooks_sign(secret=SPEC_SECRET, msg_id="m", timestamp=int(time.time()), body=body)
    with pytest.raises(UnicodeDecodeError):
        Webhook(SPEC_SECRET).verify(body, headers)
    assert verify_standard(headers, body, [SPEC_SECRET], now=int(time.time()))


def test_malformed_signature_lists_where_the_package_raises_valueerror():
    now = int(time.time())
    headers = standard_webhooks_sign(secret=SPEC_SECRET, msg_id="m", timestamp=now, body=b"{}")
    headers["webhook-signature"] = "garbage " + headers["webhook-signature"]
    with pytest.raises(ValueError):
        Webhook(SPEC_SECRET).verify(b"{}", headers)
    assert verify_standard(headers, b"{}", [SPEC_SECRET], now=now)


@pytest.mark.parametrize("secret", ["whsec_!!!", "whsec_", "not base64 at all"])
def test_unusable_standard_webhooks_secrets_are_reported_without_the_value(secret):
    with pytest.raises(SecretFormatError) as info:
        scheme_key(STANDARD_WEBHOOKS, secret)
    assert str(info.value) in ("secret is not whsec_<base64>", "secret is empty")


def test_hmac_sha256_is_hmac_over_timestamp_dot_body():
    import hashlib
    import hmac

    headers = hmac_sha256_sign(secret="s3cr3t", timestamp=1700000000, body=b'{"a":1}')
    expected = hmac.new(b"s3cr3t", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert headers == {"X-Timestamp": "1700000000", "X-Signature": f"sha256={expected}"}
    signed = signed_request_parse({"x-timestamp": "1700000000", "x-signature": expected}, now=1700000000, tolerance=300)
    assert signed[HMAC_SHA256].verify(b'{"a":1}', [b"wrong", b"s3cr3t"])
    assert not signed[HMAC_SHA256].verify(b'{"a":2}', [b"s3cr3t"])


def test_both_header_families_are_parsed_so_the_source_picks_its_own():
    now = int(time.time())
    headers = {**hmac_sha256_sign(secret="a", timestamp=now, body=b"{}"),
               **standard_webhooks_sign(secret=SPEC_SECRET, msg_id="m", timestamp=now, body=b"{}")}
    signed = signed_request_parse({k.lower(): v for k, v in headers.items()}, now=now, tolerance=300)
    assert set(signed) == {HMAC_SHA256, STANDARD_WEBHOOKS}
