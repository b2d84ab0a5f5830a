"""Signature attacks on POST /webhooks/customer, both schemes.

`webhooks/tests/test_views.py` already covers: tampered body and timestamp,
stale and future timestamps (hmac), wrong secret, hmac rotation, missing
headers, non-integer timestamps, malformed hex, surrounding whitespace,
header-name case, unknown/disabled source, the other scheme, malformed
Standard Webhooks lists. This module adds what an attacker tries next:
re-serialized bodies, length-extension-shaped inputs, exact window edges,
prefix/format tricks, duplicated headers as a WSGI server joins them,
rotation for Standard Webhooks, replays inside the window, and proof that
the comparison is `hmac.compare_digest` without an early exit.
"""

import base64
import hashlib
import hmac
import json
import time

import pytest

from webhooks.errors import WebhookError
from webhooks.models import InboxEvent
from webhooks.services import inbox_event_receive

from .conftest import (
    SHOP_SECRET, SHOP_SECRET_NEW, SUPPORT_SECRET, SUPPORT_SECRET_OLD, URL, body_of, event, hmac_headers,
    standard_headers,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]

NOT_VERIFIED = "signature verification failed"


def refused(response, status=401, fragment=""):
    assert response.status_code == status, response.content
    payload = response.json()
    assert payload["ok"] is False and fragment in payload["error"], payload
    return payload["error"]


def hexdigest(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


# --- a signature over a re-serialized body ----------------------------------------------

RAW_BODIES = [
    # what a sender's framework really sends: compact, pretty, other key order, escaped unicode
    b'{"event_id":"evt_rs","source":"shop","schema_version":1,"type":"customer.upsert",'
    b'"occurred_at":"2026-01-14T10:12:00Z","data":{"shop_id":1,"first_name":"J\xc3\xbcrgen"}}',
    json.dumps(event(event_id="evt_rs"), indent=2).encode(),
    b'{"data": {"first_name": "J\\u00fcrgen", "shop_id": 1}, "source": "shop", "type": "customer.upsert", '
    b'"schema_version": 1, "event_id": "evt_rs", "occurred_at": "2026-01-14T10:12:00Z"} ',
    b'{"source":"shop","event_id":"evt_rs","schema_version":1.0e0,"type":"customer.upsert",'
    b'"occurred_at":"2026-01-14T10:12:00Z","data":{}}',
]


@pytest.mark.parametrize("raw", RAW_BODIES, ids=["compact-utf8", "indented", "escaped-reordered", "float-literal"])
def test_signature_over_a_reserialized_body_is_refused(shop, post, raw):
    """The seed's bug: verifying json.dumps(json.loads(body)) instead of the bytes received."""
    reserialized = json.dumps(json.loads(raw)).encode()
    assert reserialized != raw
    now = int(time.time())
    forged = {"X-Timestamp": str(now), "X-Signature": hexdigest(SHOP_SECRET, str(now), reserialized)}
    refused(post(raw, headers=forged), 401, NOT_VERIFIED)
    assert not InboxEvent.objects.exists()


def test_standard_webhooks_signature_over_a_reserialized_body_is_refused(support, post):
    raw = json.dumps(event(source="support", event_id="evt_rs"), indent=1).encode()
    reserialized = json.dumps(json.loads(raw)).encode()
    headers = standard_headers(reserialized)
    refused(post(raw, headers=headers), 401, NOT_VERIFIED)
    # and the bytes it really signs are accepted: the refusal is about the bytes, nothing else
    assert post(reserialized, headers=headers).status_code == 202


# --- length-extension-shaped inputs --------------------------------------------------------

# Appended bytes that keep the body a JSON object reach the signature check (401); the rest fail
# the JSON check first (400, by the contract's order). Either way nothing is stored.
SUFFIXES = [(b" ", 401), (b"\n", 401), (b"\r\n\r\n\t", 401), (b"\x00", 400), (b"\x80", 400),
            (b'{"event_id":"evt_evil"}', 400), (b',"x":1}', 400)]


@pytest.mark.parametrize("suffix, status", SUFFIXES, ids=[repr(s) for s, _ in SUFFIXES])
def test_bytes_appended_to_a_signed_body_are_refused(shop, support, post, suffix, status):
    body = body_of(event(event_id="evt_le"))
    refused(post(body + suffix, headers=hmac_headers(body)), status)
    sup = body_of(event(source="support", event_id="evt_le"))
    refused(post(sup + suffix, headers=standard_headers(sup)), status)
    assert not InboxEvent.objects.exists()


def test_a_field_spliced_in_before_the_closing_brace_is_refused(shop, post):
    body = body_of(event(event_id="evt_splice"))
    headers = hmac_headers(body)
    refused(post(body[:-1] + b', "event_id": "evt_evil"}', headers=headers), 400, "duplicate key")
    refused(post(body[:-1] + b', "data2": {}}', headers=headers), 401, NOT_VERIFIED)
    assert not InboxEvent.objects.exists()


def test_sha256_padding_shaped_extension_is_refused(shop, post):
    """A SHA-256 length extension appends 0x80, zero padding and the bit length: HMAC is not extendable."""
    body = body_of(event(event_id="evt_pad"))
    headers = hmac_headers(body)
    message_length = len(headers["X-Timestamp"]) + 1 + len(body)
    padding = b"\x80" + b"\x00" * ((55 - message_length) % 64) + (message_length * 8).to_bytes(8, "big")
    response = post(body + padding + b',"evil":1}', headers=headers)
    assert response.status_code in (400, 401)
    assert not InboxEvent.objects.exists()


@pytest.mark.parametrize("mangle", [
    lambda d: "sha256=" + d[:32],           # a prefix of the valid digest
    lambda d: "sha256=" + d[:63],
    lambda d: d[:62],
    lambda d: "sha256=" + d + "0",          # overlong
    lambda d: d + d,
    lambda d: "sha256=" + d + "00" * 32,
    lambda d: "SHA256=" + d,                # the prefix is lower-case only (decided: refuse)
    lambda d: "sha256 = " + d,              # whitespace inside the value
    lambda d: "sha256= " + d,
    lambda d: "sha256=\t" + d,
    lambda d: "sha256:" + d,
    lambda d: "sha256=sha256=" + d,
    lambda d: "v1," + d,
    lambda d: base64.b64encode(bytes.fromhex(d)).decode(),  # right bytes, wrong encoding
    lambda d: "0x" + d,
    lambda d: d[:32] + " " + d[32:],
    lambda d: d.replace(d[0], "\uff10", 1) if d[0] == "0" else "\uff10" + d[1:],  # full-width digit
], ids=["prefix-32", "prefix-63", "bare-prefix-62", "overlong-65", "doubled", "overlong-96", "upper-prefix",
        "spaces-around-equals", "space-after-equals", "tab-after-equals", "colon", "double-prefix", "v1-comma",
        "base64", "0x", "space-inside", "fullwidth-digit"])
def test_malformed_hmac_signature_shapes_are_refused(shop, post, mangle):
    body = body_of(event(event_id="evt_shape"))
    headers = hmac_headers(body)
    digest = headers["X-Signature"].removeprefix("sha256=")
    headers["X-Signature"] = mangle(digest)
    refused(post(body, headers=headers), 401)
    assert not InboxEvent.objects.exists()


def test_hex_case_is_irrelevant_decided_accept(shop, post):
    """Hex digits are a number, not text: upper and mixed case decode to the same 32 bytes (accepted)."""
    for i, transform in enumerate([str.upper, lambda d: "".join(c.upper() if n % 2 else c for n, c in enumerate(d))]):
        body = body_of(event(event_id=f"evt_case_{i}"))
        headers = hmac_headers(body)
        headers["X-Signature"] = "sha256=" + transform(headers["X-Signature"].removeprefix("sha256="))
        assert post(body, headers=headers).status_code == 202


# --- header tricks -------------------------------------------------------------------------

def test_duplicated_hmac_headers_as_a_wsgi_server_joins_them_are_refused(shop, client):
    """gunicorn joins repeated headers with ','; a joined value is malformed, never 'the first one wins'."""
    body = body_of(event(event_id="evt_dup"))
    good = hmac_headers(body)
    bad = hmac_headers(body, secret="attacker")
    for meta in (
        {"HTTP_X_SIGNATURE": f"{bad['X-Signature']},{good['X-Signature']}", "HTTP_X_TIMESTAMP": good["X-Timestamp"]},
        {"HTTP_X_SIGNATURE": good["X-Signature"], "HTTP_X_TIMESTAMP": f"{good['X-Timestamp']},{good['X-Timestamp']}"},
    ):
        refused(client.generic("POST", URL, body, content_type="application/json", **meta), 401)
    assert not InboxEvent.objects.exists()


def test_duplicated_standard_webhooks_signature_headers_are_refused(support, client):
    body = body_of(event(source="support", event_id="evt_dup"))
    good = standard_headers(body)
    other = standard_headers(body, secret="whsec_" + base64.b64encode(b"attacker-key-000").decode())
    meta = {"HTTP_WEBHOOK_ID": good["webhook-id"], "HTTP_WEBHOOK_TIMESTAMP": good["webhook-timestamp"],
            "HTTP_WEBHOOK_SIGNATURE": f"{other['webhook-signature']},{good['webhook-signature']}"}
    refused(client.generic("POST", URL, body, content_type="application/json", **meta), 401)
    # the spec's separator is a space: the same two signatures space-separated do verify
    meta["HTTP_WEBHOOK_SIGNATURE"] = f"{other['webhook-signature']} {good['webhook-signature']}"
    assert client.generic("POST", URL, body, content_type="application/json", **meta).status_code == 202


def test_underscore_header_names_do_not_replace_the_real_ones(shop, client):
    """`X_Signature` reaches WSGI as HTTP_X_SIGNATURE only through servers that allow it; either way it is verified."""
    body = body_of(event(event_id="evt_us"))
    forged = hmac_headers(body, secret="attacker")
    response = client.generic("POST", URL, body, content_type="application/json",
                              headers={"X_Signature": forged["X-Signature"], "X_Timestamp": forged["X-Timestamp"]})
    refused(response, 401)


@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_one_valid_standard_signature_among_malformed_and_wrong_ones_verifies(support, post, position):
    body = body_of(event(source="support", event_id=f"evt_multi_{position}"))
    headers = standard_headers(body)
    valid = headers["webhook-signature"]
    wrong = standard_headers(body, secret="whsec_" + base64.b64encode(b"x" * 24).decode())
    junk = ["v1,", "v1,!!!", "v2," + valid[3:], "v1a," + valid[3:], valid[:-4], "v1," + valid[3:].rstrip("="),
            wrong["webhook-signature"], "v1," + "A" * 44, "\u00a0"]
    index = {"first": 0, "middle": len(junk) // 2, "last": len(junk)}[position]
    headers["webhook-signature"] = " ".join(junk[:index] + [valid] + junk[index:])
    assert post(body, headers=headers).status_code == 202


def test_only_malformed_and_wrong_standard_signatures_are_refused(support, post):
    body = body_of(event(source="support", event_id="evt_multi_bad"))
    headers = standard_headers(body)
    raw = base64.b64decode(headers["webhook-signature"][3:])
    variants = [
        "v1a," + headers["webhook-signature"][3:],                            # asymmetric version tag: ignored
        "v1," + base64.urlsafe_b64encode(raw).decode().rstrip("="),           # unpadded base64url
        "v1," + base64.b64encode(raw[:31]).decode(),                          # truncated MAC
        "v1," + base64.b64encode(raw + b"\x00").decode(),                     # overlong MAC
        "v1," + base64.b64encode(bytes([raw[0] ^ 1]) + raw[1:]).decode(),     # one bit off
        "V1," + headers["webhook-signature"][3:],                             # version tags are case-sensitive
    ]
    refused(post(body, headers=dict(headers, **{"webhook-signature": " ".join(variants)})), 401)


def test_standard_webhooks_tampered_and_future_timestamps(support, post):
    body = body_of(event(source="support", event_id="evt_ts"))
    headers = standard_headers(body)
    headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    refused(post(body, headers=headers), 401, NOT_VERIFIED)
    refused(post(body, headers=standard_headers(body, timestamp=int(time.time()) + 3600)), 401, "future")


def test_standard_webhooks_rotation_old_secret_removed_is_refused(support, post):
    body = body_of(event(source="support", event_id="evt_rot_old"))
    assert post(body, headers=standard_headers(body, secret=SUPPORT_SECRET_OLD)).status_code == 202
    support.secret_refs = ["${SEC_SUPPORT_SECRET}"]
    support.save()
    body = body_of(event(source="support", event_id="evt_rot_old_2"))
    refused(post(body, headers=standard_headers(body, secret=SUPPORT_SECRET_OLD)), 401, NOT_VERIFIED)
    assert post(body, headers=standard_headers(body, secret=SUPPORT_SECRET)).status_code == 202


def test_a_secret_of_one_source_never_verifies_another(shop, support, post):
    # support's body signed with shop's (hmac) secret, and shop's body with support's key in either scheme
    sup = body_of(event(source="support", event_id="evt_x"))
    refused(post(sup, headers=hmac_headers(sup, secret=SHOP_SECRET)), 401, NOT_VERIFIED)
    shop_body = body_of(event(event_id="evt_x"))
    refused(post(shop_body, headers=hmac_headers(shop_body, secret=SUPPORT_SECRET)), 401, NOT_VERIFIED)
    refused(post(shop_body, headers=standard_headers(shop_body, secret=SUPPORT_SECRET)), 401, NOT_VERIFIED)


def test_rotated_new_secret_alone_and_old_removed(shop, post):
    shop.secret_refs = ["${SEC_SHOP_SECRET_NEW}"]
    shop.save()
    body = body_of(event(event_id="evt_rot"))
    refused(post(body, headers=hmac_headers(body, secret=SHOP_SECRET)), 401, NOT_VERIFIED)
    assert post(body, headers=hmac_headers(body, secret=SHOP_SECRET_NEW)).status_code == 202


# --- the time window, at its exact edges (the service takes `now`) ---------------------------

@pytest.mark.parametrize("offset, accepted", [(-300, True), (-301, False), (300, True), (301, False),
                                              (-10**9, False), (10**9, False)])
def test_window_edges_both_schemes(shop, support, offset, accepted):
    now = 1_800_000_000
    for source, sign in (("shop", lambda b: hmac_headers(b, timestamp=now + offset)),
                         ("support", lambda b: standard_headers(b, timestamp=now + offset))):
        body = body_of(event(source=source, event_id=f"evt_w_{offset}"))
        headers = {k.lower(): v for k, v in sign(body).items()}
        if accepted:
            assert inbox_event_receive(body=body, headers=headers, now=now).status == "accepted"
        else:
            with pytest.raises(WebhookError) as info:
                inbox_event_receive(body=body, headers=headers, now=now)
            assert info.value.status_code == 401
            assert "too old" in info.value.message or "future" in info.value.message


def test_timestamp_and_body_cannot_trade_bytes(shop, post):
    """`<ts>.<body>` is unambiguous: ts is digits only, so moving a digit across the dot changes the MAC input."""
    body = body_of(event(event_id="evt_shift"))
    headers = hmac_headers(body)
    ts = headers["X-Timestamp"]
    refused(post(ts[-1:].encode() + b"." + body, headers=dict(headers, **{"X-Timestamp": ts[:-1]})), 401)
    refused(post(body, headers=dict(headers, **{"X-Timestamp": ts + "."})), 401)


# --- replays inside the window -----------------------------------------------------------------

def test_replays_inside_the_window_store_once_both_schemes(shop, support, post):
    body = body_of(event(event_id="evt_replay"))
    headers = hmac_headers(body)
    sup = body_of(event(source="support", event_id="evt_replay"))
    sup_headers = standard_headers(sup)
    statuses = [post(body, headers=headers).json()["status"] for _ in range(5)]
    statuses += [post(sup, headers=sup_headers).json()["status"] for _ in range(5)]
    assert statuses == ["accepted"] + ["duplicate_ignored"] * 4 + ["accepted"] + ["duplicate_ignored"] * 4
    assert InboxEvent.objects.count() == 2


def test_replay_without_event_id_is_deduplicated_by_the_computed_key(shop, post):
    envelope = event()
    del envelope["event_id"]
    body = body_of(envelope)
    headers = hmac_headers(body)
    assert [post(body, headers=headers).json()["status"] for _ in range(3)] == ["accepted"] + ["duplicate_ignored"] * 2
    assert InboxEvent.objects.count() == 1


# --- constant-time comparison ---------------------------------------------------------------------

@pytest.fixture
def compare_calls(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr("webhooks.signatures.hmac.compare_digest", counting)
    return calls


def test_hmac_scheme_compares_with_compare_digest_against_every_secret(shop, post, compare_calls):
    shop.secret_refs = ["${SEC_SHOP_SECRET}", "${SEC_SHOP_SECRET_NEW}"]
    shop.save()
    for i, secret in enumerate([SHOP_SECRET, SHOP_SECRET_NEW, "wrong"]):
        compare_calls.clear()
        body = body_of(event(event_id=f"evt_cd_{i}"))
        post(body, headers=hmac_headers(body, secret=secret))
        # no early exit: both secrets are compared whichever matches (or none), 32 raw bytes each
        assert compare_calls == [(32, 32), (32, 32)], (secret, compare_calls)


def test_standard_scheme_compares_every_secret_with_every_signature(support, post, compare_calls):
    body = body_of(event(source="support", event_id="evt_cd"))
    headers = standard_headers(body)
    other = standard_headers(body, secret="whsec_" + base64.b64encode(b"k" * 24).decode())
    headers["webhook-signature"] = f"{headers['webhook-signature']} {other['webhook-signature']} v1,!!"
    assert post(body, headers=headers).status_code == 202
    assert compare_calls == [(32, 32)] * 4  # 2 secrets x 2 well-formed signatures


def test_no_other_equality_check_decides_a_signature(shop, post, monkeypatch):
    """With compare_digest forced to False, even a perfect signature is refused: nothing else short-circuits."""
    monkeypatch.setattr("webhooks.signatures.hmac.compare_digest", lambda a, b: False)
    body = body_of(event(event_id="evt_cd_false"))
    refused(post(body), 401, NOT_VERIFIED)
