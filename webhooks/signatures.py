"""Signature schemes: parse the headers, then verify over the raw body bytes.

Two steps, so the gateway can refuse a request whose headers are missing,
malformed or stale (facts of the request alone) before it knows which source
is asking; and verify the signature against every secret of the source once
the source is known. Comparison is constant time (`hmac.compare_digest`).

Header values are stripped of surrounding whitespace (HTTP optional
whitespace); anything else out of form is refused, never repaired:
timestamps are ASCII digits only (no sign, no fraction, no exponent, no
Unicode digits, no `_`), hex signatures exactly 64 hex digits.

- `hmac-sha256`: `X-Timestamp: <unix seconds>`,
  `X-Signature: [sha256=]<hex HMAC-SHA256(secret, "<X-Timestamp>.<raw body>")>`;
  the secret is used as its UTF-8 bytes.
- `standard-webhooks` (https://www.standardwebhooks.com/): `webhook-id`,
  `webhook-timestamp`, `webhook-signature: v1,<base64> [v1,<base64> ...]`,
  signed content `"<id>.<timestamp>.<raw body>"`, secrets `whsec_<base64>`.
  Implemented here over bytes because the `standardwebhooks` package decodes
  the body as UTF-8 and crashes on malformed signature lists; the tests prove
  it agrees with that package and with the specification's test vector.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import WebhookError

HMAC_SHA256 = "hmac-sha256"
STANDARD_WEBHOOKS = "standard-webhooks"

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_SIGNATURE = re.compile(r"(?:sha256=)?([0-9a-fA-F]{64})")
_MAX_WEBHOOK_ID = 255
_WHSEC_PREFIX = "whsec_"


class SignatureError(WebhookError):
    """401: missing, malformed or stale signature headers, or no secret matches."""

    def __init__(self, message: str):
        super().__init__(401, message)


class SecretFormatError(ValueError):
    """A resolved secret cannot be used by the scheme (e.g. not base64 for Standard Webhooks)."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return None if value is None else value.strip()


def _check_timestamp(raw: str, header: str, *, now: int, tolerance: int) -> int:
    if not _TIMESTAMP.fullmatch(raw):
        raise SignatureError(f"{header} must be unix time in whole seconds (ASCII digits only)")
    timestamp = int(raw)
    if timestamp < now - tolerance:
        raise SignatureError(f"{header} is too old (more than {tolerance} s before the server's time)")
    if timestamp > now + tolerance:
        raise SignatureError(f"{header} is too far in the future (more than {tolerance} s after the server's time)")
    return timestamp


@dataclass(frozen=True)
class HmacSha256Signature:
    timestamp: str
    signature: bytes

    scheme = HMAC_SHA256

    @staticmethod
    def key(secret: str) -> bytes:
        if not secret:
            raise SecretFormatError("secret is empty")
        return secret.encode("utf-8")

    def verify(self, body: bytes, keys: Sequence[bytes]) -> bool:
        matched = False
        for key in keys:
            mac = hmac.new(key, self.timestamp.encode("ascii") + b".", hashlib.sha256)
            mac.update(body)
            # No early exit: the time taken does not depend on which secret matched.
            matched |= hmac.compare_digest(mac.digest(), self.signature)
        return matched


@dataclass(frozen=True)
class StandardWebhooksSignature:
    msg_id: str
    timestamp: int
    signatures: tuple[bytes, ...]

    scheme = STANDARD_WEBHOOKS

    @staticmethod
    def key(secret: str) -> bytes:
        raw = secret[len(_WHSEC_PREFIX):] if secret.startswith(_WHSEC_PREFIX) else secret
        try:
            key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise SecretFormatError("secret is not whsec_<base64>") from None
        if not key:
            raise SecretFormatError("secret is empty")
        return key

    def verify(self, body: bytes, keys: Sequence[bytes]) -> bool:
        prefix = f"{self.msg_id}.{self.timestamp}.".encode("utf-8")
        matched = False
        for key in keys:
            mac = hmac.new(key, prefix, hashlib.sha256)
            mac.update(body)
            expected = mac.digest()
            for candidate in self.signatures:
                matched |= hmac.compare_digest(expected, candidate)
        return matched


def _parse_hmac(headers: Mapping[str, str], *, now: int, tolerance: int) -> HmacSha256Signature:
    timestamp = _header(headers, "x-timestamp")
    signature = _header(headers, "x-signature")
    missing = [name for name, value in (("X-Timestamp", timestamp), ("X-Signature", signature)) if not value]
    if missing:
        raise SignatureError(f"missing header {' and '.join(missing)}")
    _check_timestamp(timestamp, "X-Timestamp", now=now, tolerance=tolerance)
    match = _HEX_SIGNATURE.fullmatch(signature)
    if match is None:
        raise SignatureError("X-Signature must be 64 hex digits of HMAC-SHA256, optionally prefixed sha256=")
    return HmacSha256Signature(timestamp=timestamp, signature=bytes.fromhex(match.group(1)))


def _parse_standard(headers: Mapping[str, str], *, now: int, tolerance: int) -> StandardWebhooksSignature:
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signature = _header(headers, "webhook-signature")
    missing = [
        name for name, value in
        (("webhook-id", msg_id), ("webhook-timestamp", timestamp), ("webhook-signature", signature)) if not value
    ]
    if missing:
        raise SignatureError(f"missing header {', '.join(missing)}")
    if len(msg_id) > _MAX_WEBHOOK_ID or not msg_id.isprintable() or not msg_id.isascii():
        raise SignatureError(f"webhook-id must be at most {_MAX_WEBHOOK_ID} printable ASCII characters")
    ts = _check_timestamp(timestamp, "webhook-timestamp", now=now, tolerance=tolerance)
    signatures = []
    for entry in signature.split():
        version, sep, value = entry.partition(",")
        if not sep or version != "v1":
            continue  # other versions (v1a = asymmetric) and junk are ignored, as the spec says
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(decoded) == hashlib.sha256().digest_size:
            signatures.append(decoded)
    if not signatures:
        raise SignatureError("webhook-signature holds no well-formed v1,<base64> signature")
    return StandardWebhooksSignature(msg_id=msg_id, timestamp=ts, signatures=tuple(signatures))


_HMAC_HEADERS = ("x-timestamp", "x-signature")
_STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")

SignedRequest = HmacSha256Signature | StandardWebhooksSignature


def signed_request_parse(headers: Mapping[str, str], *, now: int, tolerance: int) -> dict[str, SignedRequest]:
    """The signatures the request carries, by scheme, with well-formed, fresh timestamps.

    `headers` must be case-insensitive (Django's `request.headers`) or lower-case.
    Raises `SignatureError` when no family of headers is present, or when a
    present family is incomplete, malformed or outside the tolerance. This
    depends on the request alone, never on the source.
    """
    found: dict[str, SignedRequest] = {}
    if any(headers.get(name) is not None for name in _STANDARD_HEADERS):
        found[STANDARD_WEBHOOKS] = _parse_standard(headers, now=now, tolerance=tolerance)
    if any(headers.get(name) is not None for name in _HMAC_HEADERS):
        found[HMAC_SHA256] = _parse_hmac(headers, now=now, tolerance=tolerance)
    if not found:
        raise SignatureError(
            "missing signature headers: X-Timestamp and X-Signature (hmac-sha256), "
            "or webhook-id, webhook-timestamp and webhook-signature (standard-webhooks)"
        )
    return found


SCHEMES = {HMAC_SHA256: HmacSha256Signature, STANDARD_WEBHOOKS: StandardWebhooksSignature}


def scheme_key(scheme: str, secret: str) -> bytes:
    """The HMAC key a scheme derives from a secret value; raises `SecretFormatError`."""
    return SCHEMES[scheme].key(secret)


# --- Signing (senders, send_sample_webhook, tests) ----------------------------

def hmac_sha256_sign(*, secret: str, timestamp: int | str, body: bytes) -> dict[str, str]:
    """The X-Timestamp / X-Signature headers for `body`."""
    ts = str(timestamp)
    mac = hmac.new(HmacSha256Signature.key(secret), ts.encode("ascii") + b"." + body, hashlib.sha256)
    return {"X-Timestamp": ts, "X-Signature": f"sha256={mac.hexdigest()}"}


def standard_webhooks_sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The webhook-id / webhook-timestamp / webhook-signature headers for `body`."""
    mac = hmac.new(StandardWebhooksSignature.key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode("ascii"),
    }
