"""Hostile bodies, signed correctly: refused cleanly (400/413) or stored byte-for-byte and shown escaped.

`webhooks/tests/test_views.py` covers the basic refusals (NaN, -Infinity,
1e400, long digit runs, duplicate keys, \\u0000, lone surrogates, nesting
over 32, BOM, invalid UTF-8, body of exactly the limit). Here: the variants an
attacker tries around them, sizes just under and over the limit with
multi-byte text, many keys, and injection payloads followed all the way
through the inbox, the worker, the admin and the read API.
"""

import json
import time

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from canonical.models import Customer
from webhooks.processing import inbox_event_process
from webhooks.models import InboxEvent

from .conftest import body_of, event, hmac_headers

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]

LIMIT = 256 * 1024


def status_and_rows(post, body):
    response = post(body, headers=hmac_headers(body))
    return response.status_code, InboxEvent.objects.count(), response


# --- refused at the door ------------------------------------------------------------------

REFUSED = [
    # invalid UTF-8 in its less obvious forms
    (b'{"source":"shop","x":"\xc0\xaf"}', "not valid UTF-8"),              # overlong '/'
    (b'{"source":"shop","x":"\xe0\x80\xaf"}', "not valid UTF-8"),          # overlong, 3 bytes
    (b'{"source":"shop","x":"\xed\xa0\x80"}', "not valid UTF-8"),          # a surrogate encoded as UTF-8
    (b'{"source":"shop","x":"\xf4\x90\x80\x80"}', "not valid UTF-8"),      # beyond U+10FFFF
    (b'{"source":"shop","x":"\xf8\x88\x80\x80\x80"}', "not valid UTF-8"),  # 5-byte form
    (b'{"source":"shop","x":"\xe2\x82"}', "not valid UTF-8"),              # truncated sequence
    ('{"source":"shop"}'.encode("utf-16"), "not valid UTF-8"),
    ('{"source":"shop"}'.encode("utf-32-le"), "not valid"),
    # raw control characters (JSON requires them escaped)
    (b'{"source":"shop","x":"a\x00b"}', "not valid JSON"),
    (b'{"source":"shop","x":"a\x1fb"}', "not valid JSON"),
    (b'\x00{"source":"shop"}', "not valid JSON"),
    # non-finite numbers anywhere, in any spelling json accepts
    (b'{"source":"shop","data":{"a":[1,{"b":NaN}]}}', "NaN"),
    (b'{"source":"shop","data":{"a":Infinity}}', "Infinity"),
    (b'{"source":"shop","data":{"a":[-1e309]}}', "out of range"),
    (b'{"source":"shop","data":{"a":1.7976931348623159e308}}', "out of range"),
    (b'{"source":"shop","data":{"a":nan}}', "not valid JSON"),
    # duplicate keys, including ones only equal after unescaping, and deep ones
    (b'{"source":"shop","data":{"a":1,"\\u0061":2}}', "duplicate key"),
    (b'{"source":"shop","data":{"x":[{"k":1,"k":1}]}}', "duplicate key"),
    (b'{"sourc\\u0065":"shop","source":"crm"}', "duplicate key"),
    # NUL and lone surrogates, escaped, in keys and deep values
    (b'{"source":"shop","data":{"a":{"b":["\\u0000"]}}}', "\\u0000"),
    (b'{"source":"shop","data":{"\\u0000":1}}', "\\u0000"),
    (b'{"source":"shop","data":{"n":"\\ud83d"}}', "lone surrogate"),
    (b'{"source":"shop","data":{"n":"\\ude00\\ud83d"}}', "lone surrogate"),
    (b'{"source":"shop","data":{"n":"x\\udbff"}}', "lone surrogate"),
    (b'{"source":"sh\\u0000op"}', "\\u0000"),
    # nesting: objects and arrays mixed, one over the limit
    (b'{"source":"shop","data":' + b'{"a":[' * 16 + b"1" + b"]}" * 16 + b"}", "nested deeper than 32"),
    # not an object at the top
    (b' \t\n', "not valid JSON"),
    (b'{"source":"shop"} {"source":"shop"}', "not valid JSON"),
    (b'{"source":"shop"}\x00', "not valid JSON"),
]


@pytest.mark.parametrize("body, fragment", REFUSED, ids=[repr(b[:40]) for b, _ in REFUSED])
def test_hostile_bodies_are_400_and_nothing_is_stored(shop, post, body, fragment):
    status, rows, response = status_and_rows(post, body)
    assert status == 400, response.content
    assert fragment in response.json()["error"], response.json()
    assert rows == 0


def _padded(size: int, filler: str) -> bytes:
    envelope = event(event_id="evt_big", data={"shop_id": 1, "notes": ""})
    base = len(body_of(envelope))
    unit = len(json.dumps(filler).encode()) - 2
    count, rest = divmod(size - base, unit)
    envelope["data"]["notes"] = filler * count + "x" * rest
    body = body_of(envelope)
    assert len(body) == size
    return body


@pytest.mark.parametrize("filler", ["x", "\u00e4", "\U0001F600", "<"], ids=["ascii", "latin", "astral", "html"])
def test_huge_strings_just_under_the_limit_are_stored_verbatim_and_one_byte_more_is_413(shop, post, filler):
    body = _padded(LIMIT - 1, filler)
    response = post(body, headers=hmac_headers(body))
    assert response.status_code == 202, response.content[:200]
    assert InboxEvent.objects.get().payload == json.loads(body)

    InboxEvent.objects.all().delete()
    over = _padded(LIMIT + 1, filler)
    response = post(over, headers=hmac_headers(over))
    assert response.status_code == 413
    assert not InboxEvent.objects.exists()


def test_many_keys_are_accepted_quickly_or_refused_whole(shop, post):
    keys = {f"{i:x}": 0 for i in range(20_000)}
    body = body_of(event(event_id="evt_keys", data={"shop_id": 1, **keys}))
    assert len(body) < LIMIT
    started = time.monotonic()
    response = post(body, headers=hmac_headers(body))
    elapsed = time.monotonic() - started
    assert response.status_code == 202
    assert elapsed < 5, f"20,000 keys took {elapsed:.1f} s"
    assert len(InboxEvent.objects.get().payload["data"]) == 20_001

    # the same count of keys with one duplicate at the very end: refused whole
    dup = body[:-2] + b', "0": 0}}'
    assert post(dup, headers=hmac_headers(dup)).status_code == 400
    assert InboxEvent.objects.count() == 1


def test_many_tiny_arrays_and_a_wide_flat_array(shop, post):
    body = body_of(event(event_id="evt_wide", data={"shop_id": 1, "a": [[]] * 40_000}))
    assert len(body) < LIMIT
    assert post(body, headers=hmac_headers(body)).status_code == 202


def test_big_integers_are_stored_exactly(shop, post):
    body = body_of(event(event_id="evt_int", data={"shop_id": 1, "big": 2**200, "neg": -(2**70)}))
    assert post(body, headers=hmac_headers(body)).status_code == 202
    data = InboxEvent.objects.get().payload["data"]
    assert (data["big"], data["neg"]) == (2**200, -(2**70))


# --- injection payloads: stored verbatim, escaped wherever shown ---------------------------------

MARK = "SECMARK"
SCRIPT = f'<script>alert("{MARK}")</script>'
PAYLOADS = {
    "first_name": SCRIPT,
    "last_name": f"'; DROP TABLE webhooks_inboxevent; -- {MARK}",
    "locale": "de-DE",
    "notes_html": f'"><img src=x onerror=alert(1)>{MARK}',
    "notes_template": "{{ request.user.password }}{% debug %}" + MARK,
    "notes_sql": "1' OR '1'='1' UNION SELECT password FROM auth_user --",
    "notes_like": "%_\\%",
    "notes_jndi": "${jndi:ldap://127.0.0.1/a}",
    "notes_format": "%s%s%n{0}{__class__}",
    "notes_bidi": "\u202egnp.exe\u200b\ufeff",
    f"<b onmouseover=alert(1)>{MARK}": "key with html",
}


def _hostile_event() -> dict:
    return event(event_id=f"<i>{MARK}</i>", data={"shop_id": 4242, "email": "hostile@example.com", **PAYLOADS})


def test_sql_and_html_are_stored_byte_for_byte(shop, post):
    body = body_of(_hostile_event())
    assert post(body, headers=hmac_headers(body)).status_code == 202
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM webhooks_inboxevent")
        (raw,) = cursor.fetchone()
    stored = raw if isinstance(raw, dict) else json.loads(raw)
    assert stored == _hostile_event()
    for key, value in PAYLOADS.items():
        assert stored["data"][key].encode("utf-8") == value.encode("utf-8"), key
    assert InboxEvent.objects.get().event_id == f"<i>{MARK}</i>"
    # the tables the payload named are still there
    assert InboxEvent.objects.count() == 1


@pytest.fixture
def processed_hostile(shop, post, django_capture_on_commit_callbacks):
    body = body_of(_hostile_event())
    assert post(body, headers=hmac_headers(body)).status_code == 202
    inbox = InboxEvent.objects.get()
    assert inbox_event_process(inbox.pk) == "processed"
    inbox.refresh_from_db()
    return inbox


def _assert_escaped(content: bytes, where: str):
    text = content.decode()
    assert "<script>alert(" not in text, where
    assert "<img src=x" not in text, where
    assert "<b onmouseover" not in text, where
    assert f"<i>{MARK}" not in text, where


def test_admin_shows_every_hostile_value_escaped(processed_hostile):
    customer = Customer.objects.get()
    assert customer.first_name == SCRIPT  # the golden record keeps it as text
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", None))
    inbox_page = client.get(reverse("admin:webhooks_inboxevent_change", args=[processed_hostile.pk]))
    assert inbox_page.status_code == 200
    _assert_escaped(inbox_page.content, "inbox event page")
    assert "&lt;script&gt;alert(" in inbox_page.content.decode()
    assert MARK in inbox_page.content.decode()
    pages = [
        reverse("admin:webhooks_inboxevent_changelist"),
        reverse("admin:webhooks_inboxevent_changelist") + "?q=hostile",
        reverse("admin:canonical_customer_changelist"),
        reverse("admin:canonical_customer_changelist") + "?q=" + MARK,
        reverse("admin:canonical_customer_change", args=[customer.pk]),
        reverse("admin:webhooks_inboxevent_replay", args=[processed_hostile.pk]),
        reverse("admin:index"),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code in (200, 302), url
        _assert_escaped(response.content, url)


def test_read_api_returns_hostile_values_as_json_data(processed_hostile):
    api = APIClient()
    api.force_authenticate(User.objects.create_superuser("api", "api@example.com", None))
    response = api.get(f"/api/customers/{Customer.objects.get().pk}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["first_name"] == SCRIPT
    assert response.json()["last_name"] == PAYLOADS["last_name"]


@pytest.mark.parametrize("occurred_at", ["0001-01-01T00:00:00+02:34:48", "0001-01-01T00:00:00+00:01",
                                         "9999-12-31T23:59:59-00:01", "9999-12-31T23:59:59.999999-23:59"])
def test_occurred_at_that_overflows_in_utc_is_400_not_500(shop, post, occurred_at):
    """Found by the fuzzer: astimezone(UTC) raised OverflowError (a 500) for the first/last day of the calendar."""
    body = body_of(event(event_id="evt_overflow", occurred_at=occurred_at))
    response = post(body, headers=hmac_headers(body))
    assert response.status_code == 400
    assert "occurred_at" in response.json()["error"]
    assert not InboxEvent.objects.exists()


@pytest.mark.parametrize("occurred_at", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00-05:00", "9999-12-31T23:59:59Z"])
def test_occurred_at_at_the_calendar_edges_in_utc_is_stored(shop, post, occurred_at):
    body = body_of(event(event_id="evt_edge", occurred_at=occurred_at))
    assert post(body, headers=hmac_headers(body)).status_code == 202
