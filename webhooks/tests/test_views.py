"""POST /webhooks/customer as a sender observes it: every row of the contract table."""

import json
import time

import pytest
from django.test import override_settings

from webhooks.models import InboxEvent, Source
from webhooks.processing import PUMP_TASK

from .conftest import (
    SHOP_SECRET, SUPPORT_SECRET, SUPPORT_SECRET_OLD, URL, body_of, hmac_headers, sample_event, standard_headers,
)

pytestmark = pytest.mark.django_db


def assert_error(response, status, *fragments):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    payload = response.json()
    assert payload["ok"] is False and isinstance(payload["error"], str), payload
    for fragment in fragments:
        assert fragment in payload["error"], payload["error"]
    return payload["error"]


# --- 202 ---------------------------------------------------------------------

def test_accepted_event_is_stored_as_received(shop, post, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(sample_event())
    assert response.status_code == 202
    assert response.json() == {"ok": True, "status": "accepted", "event_id": "evt_123"}
    event = InboxEvent.objects.get()
    assert (event.source, event.event_id, event.event_id_provided) == (shop, "evt_123", True)
    assert (event.type, event.schema_version, event.status, event.attempts) == ("customer.upsert", 1, "received", 0)
    assert event.occurred_at.isoformat() == "2026-01-14T10:12:00+00:00"
    assert event.payload == sample_event()
    # processing is enqueued after commit, exactly once, for this row
    assert len(callbacks) == 1


def test_enqueue_after_commit_wakes_the_inbox_pump(shop, post, monkeypatch,
                                                                      django_capture_on_commit_callbacks):
    calls = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda *args, **kw: calls.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        response = post(sample_event())
    assert response.status_code == 202
    assert calls == [(PUMP_TASK,)]


def test_failing_enqueue_still_answers_202_the_sweeper_catches_up(shop, post, monkeypatch,
                                                                   django_capture_on_commit_callbacks):
    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr("django_q.tasks.async_task", broken)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(sample_event())
    assert response.status_code == 202
    assert InboxEvent.objects.get().status == "received"


def test_redelivery_with_the_same_event_id_is_duplicate_ignored(shop, post):
    first = post(sample_event())
    # the sender retries later with a new signature and even a changed body: still the same event
    second = post(sample_event(data={"shop_id": 9981, "email": "other@example.com"}))
    assert first.json()["status"] == "accepted"
    assert second.status_code == 202
    assert second.json() == {"ok": True, "status": "duplicate_ignored", "event_id": "evt_123"}
    assert InboxEvent.objects.count() == 1
    assert InboxEvent.objects.get().payload["data"]["email"] == "Person@Example.com "


def test_same_event_id_from_another_source_is_another_event(shop, support, post):
    event = sample_event()
    post(event)
    other = sample_event(source="support")
    response = post(other, headers=standard_headers(body_of(other)))
    assert response.json()["status"] == "accepted"
    assert InboxEvent.objects.count() == 2


def test_without_event_id_the_computed_key_deduplicates(shop, post):
    event = sample_event()
    del event["event_id"]
    first = post(event)
    assert first.status_code == 202
    key = first.json()["event_id"]
    assert key.startswith("sha256:") and len(key) == len("sha256:") + 64
    # the same instant written with another offset, keys in another order: the same event
    same = {"data": dict(reversed(list(event["data"].items()))), "occurred_at": "2026-01-14T11:12:00+01:00",
            "type": "customer.upsert", "schema_version": 1, "source": "shop"}
    second = post(same)
    assert second.json() == {"ok": True, "status": "duplicate_ignored", "event_id": key}
    changed = dict(event, data=dict(event["data"], first_name="Moritz"))
    third = post(changed)
    assert third.json()["status"] == "accepted" and third.json()["event_id"] != key
    stored = InboxEvent.objects.get(event_id=key)
    assert stored.event_id_provided is False
    assert InboxEvent.objects.count() == 2


def test_charset_parameter_is_accepted(shop, post):
    assert post(sample_event(), content_type="application/json; charset=utf-8").status_code == 202


def test_v2_event_from_standard_webhooks_source(support, post):
    event = sample_event(source="support", schema_version=2, event_id="sup-1",
                         data={"ids": {"support": "T-1"}, "contact": {"email": "a@example.com"}})
    body = body_of(event)
    response = post(body, headers=standard_headers(body))
    assert response.status_code == 202, response.content
    assert InboxEvent.objects.get().source == support


# --- 401 ---------------------------------------------------------------------

NOT_VERIFIED = "signature verification failed"


def test_tampered_body_is_401(shop, post):
    body = body_of(sample_event())
    headers = hmac_headers(body)
    tampered = body.replace(b"Max", b"Eve")
    assert_error(post(tampered, headers=headers), 401, NOT_VERIFIED)
    assert not InboxEvent.objects.exists()


def test_tampered_timestamp_is_401(shop, post):
    body = body_of(sample_event())
    headers = hmac_headers(body)
    headers["X-Timestamp"] = str(int(headers["X-Timestamp"]) + 1)
    assert_error(post(body, headers=headers), 401, NOT_VERIFIED)


def test_replay_with_an_old_timestamp_is_401(shop, post):
    body = body_of(sample_event(event_id="evt_old"))
    headers = hmac_headers(body, timestamp=int(time.time()) - 301)
    assert_error(post(body, headers=headers), 401, "X-Timestamp is too old")
    # just inside the tolerance still passes
    fresh = hmac_headers(body, timestamp=int(time.time()) - 290)
    assert post(body, headers=fresh).status_code == 202


def test_future_timestamp_is_401(shop, post):
    body = body_of(sample_event())
    # +310, not +301: the server reads its clock a moment later, which shrinks the gap
    headers = hmac_headers(body, timestamp=int(time.time()) + 310)
    assert_error(post(body, headers=headers), 401, "too far in the future")


@override_settings(WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS=10)
def test_tolerance_comes_from_settings(shop, post):
    body = body_of(sample_event())
    assert_error(post(body, headers=hmac_headers(body, timestamp=int(time.time()) - 60)), 401, "too old")


def test_wrong_secret_is_401(shop, post):
    body = body_of(sample_event())
    assert_error(post(body, headers=hmac_headers(body, secret="not-the-secret")), 401, NOT_VERIFIED)


def test_rotated_secrets_both_verify_while_both_are_listed(shop, post, monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRET_NEW", "the-new-shop-secret")
    shop.secret_refs = ["${WEBHOOK_SECRET}", "${WEBHOOK_SECRET_NEW}"]
    shop.save()
    for i, secret in enumerate([SHOP_SECRET, "the-new-shop-secret"]):
        body = body_of(sample_event(event_id=f"evt_rot_{i}"))
        assert post(body, headers=hmac_headers(body, secret=secret)).status_code == 202
    # the old one is dropped from the list: it no longer verifies
    shop.secret_refs = ["${WEBHOOK_SECRET_NEW}"]
    shop.save()
    body = body_of(sample_event(event_id="evt_rot_2"))
    assert_error(post(body, headers=hmac_headers(body, secret=SHOP_SECRET)), 401, NOT_VERIFIED)


def test_rotation_works_when_the_old_variable_is_already_unset(shop, post, monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRET_NEW", "the-new-shop-secret")
    monkeypatch.delenv("WEBHOOK_SECRET")
    shop.secret_refs = ["${WEBHOOK_SECRET}", "${WEBHOOK_SECRET_NEW}"]
    shop.save()
    body = body_of(sample_event())
    assert post(body, headers=hmac_headers(body, secret="the-new-shop-secret")).status_code == 202


@pytest.mark.parametrize("drop", ["X-Timestamp", "X-Signature"])
def test_missing_hmac_header_is_401_and_named(shop, post, drop):
    body = body_of(sample_event())
    headers = hmac_headers(body)
    del headers[drop]
    assert_error(post(body, headers=headers), 401, f"missing header {drop}")


def test_no_signature_headers_at_all_is_401(shop, post):
    assert_error(post(sample_event(), headers={}), 401, "missing signature headers")


def test_sha256_prefix_is_optional(shop, post):
    body = body_of(sample_event())
    headers = hmac_headers(body)
    assert headers["X-Signature"].startswith("sha256=")
    headers["X-Signature"] = headers["X-Signature"].removeprefix("sha256=").upper()
    assert post(body, headers=headers).status_code == 202


@pytest.mark.parametrize("value", ["1e9", "+1700000000", "1700000000.5", "١٧٠٠٠٠٠٠٠٠", "1_700_000_000", "abc", "-5"])
def test_non_integer_timestamps_are_401(shop, post, value):
    body = body_of(sample_event())
    headers = hmac_headers(body)
    headers["X-Timestamp"] = value
    assert_error(post(body, headers=headers), 401, "X-Timestamp must be unix time")


@pytest.mark.parametrize("value", ["zz" * 32, "abc", "sha256=", "sha1=" + "0" * 64, "0" * 63, "0" * 65,
                                   "sha256=" + "0" * 64 + ",sha256=" + "0" * 64])
def test_malformed_signatures_are_401(shop, post, value):
    body = body_of(sample_event())
    headers = hmac_headers(body)
    headers["X-Signature"] = value
    assert_error(post(body, headers=headers), 401, "X-Signature must be 64 hex digits")


def test_surrounding_whitespace_in_header_values_is_ignored(shop, post):
    body = body_of(sample_event())
    headers = {name: f"  {value}\t" for name, value in hmac_headers(body).items()}
    assert post(body, headers=headers).status_code == 202


def test_header_names_are_case_insensitive(shop, post):
    body = body_of(sample_event())
    headers = {name.upper(): value for name, value in hmac_headers(body).items()}
    assert post(body, headers=headers).status_code == 202


def test_unknown_source_is_401_indistinguishable_from_a_bad_signature(shop, post):
    event = sample_event(source="nobody")
    unknown = assert_error(post(event), 401)
    bad = assert_error(post(sample_event(), headers=hmac_headers(body_of(sample_event()), secret="x")), 401)
    assert unknown == bad


def test_disabled_source_is_401(shop, post):
    Source.objects.filter(pk=shop.pk).update(enabled=False)
    assert_error(post(sample_event()), 401, NOT_VERIFIED)
    assert not InboxEvent.objects.exists()


def test_with_the_source_cache_a_disable_counts_at_once_in_this_process_and_within_the_ttl_elsewhere(
        shop, post, settings, monkeypatch):
    from webhooks import selectors

    settings.WEBHOOK_SOURCE_CACHE_SECONDS = 60
    selectors.source_cache_clear()
    assert post(sample_event(event_id="e1")).status_code == 202  # cached now
    # another process disabled it (no signal here): this process still accepts until the TTL ends
    Source.objects.filter(pk=shop.pk).update(enabled=False)
    assert post(sample_event(event_id="e2")).status_code == 202
    real_monotonic = selectors.time.monotonic
    monkeypatch.setattr(selectors.time, "monotonic", lambda: real_monotonic() + 61)
    assert_error(post(sample_event(event_id="e3")), 401, NOT_VERIFIED)
    # a save in this process (admin, config import) clears the cache at once
    monkeypatch.setattr(selectors.time, "monotonic", real_monotonic)
    shop.refresh_from_db()
    shop.enabled = True
    shop.save()
    assert post(sample_event(event_id="e4")).status_code == 202
    shop.enabled = False
    shop.save()
    assert_error(post(sample_event(event_id="e5")), 401, NOT_VERIFIED)
    selectors.source_cache_clear()


def test_request_signed_with_the_other_scheme_is_401(shop, support, post):
    # shop uses hmac-sha256; a Standard Webhooks signature with shop's secret is not accepted
    body = body_of(sample_event())
    assert_error(post(body, headers=standard_headers(body, secret="whsec_" + "c2hvcA==")), 401, NOT_VERIFIED)


def test_secret_variable_unset_is_503_so_the_sender_retries(shop, post, monkeypatch, caplog):
    body = body_of(sample_event())
    headers = hmac_headers(body)
    monkeypatch.delenv("WEBHOOK_SECRET")
    response = post(body, headers=headers)
    assert_error(response, 503, "secret is not configured")
    assert response["Retry-After"]
    assert "WEBHOOK_SECRET is not set" in caplog.text


# --- Standard Webhooks ---------------------------------------------------------

def test_standard_webhooks_old_and_new_secret_and_multiple_signatures(support, post):
    for i, secret in enumerate([SUPPORT_SECRET_OLD, SUPPORT_SECRET]):
        body = body_of(sample_event(source="support", event_id=f"s{i}"))
        assert post(body, headers=standard_headers(body, secret=secret)).status_code == 202
    # a sender signing with several keys sends several signatures, space separated
    body = body_of(sample_event(source="support", event_id="s3"))
    good = standard_headers(body, secret=SUPPORT_SECRET)
    other = standard_headers(body, secret="whsec_b3RoZXI=", msg_id=good["webhook-id"],
                             timestamp=int(good["webhook-timestamp"]))
    good["webhook-signature"] = f"v1a,xyz junk {other['webhook-signature']} {good['webhook-signature']}"
    assert post(body, headers=good).status_code == 202


@pytest.mark.parametrize("signature", ["v1", "v1,", "v1,not-base64!!", "v2,AAAA", ",,,", "v1,AAAA"])
def test_standard_webhooks_malformed_signature_is_401_not_500(support, post, signature):
    body = body_of(sample_event(source="support"))
    headers = standard_headers(body)
    headers["webhook-signature"] = signature
    assert_error(post(body, headers=headers), 401, "webhook-signature")


def test_standard_webhooks_tampered_id_and_missing_header(support, post):
    body = body_of(sample_event(source="support"))
    headers = standard_headers(body)
    headers["webhook-id"] = "msg_other"
    assert_error(post(body, headers=headers), 401, NOT_VERIFIED)
    headers = standard_headers(body)
    del headers["webhook-id"]
    assert_error(post(body, headers=headers), 401, "missing header webhook-id")


def test_standard_webhooks_stale_timestamp(support, post):
    body = body_of(sample_event(source="support"))
    assert_error(post(body, headers=standard_headers(body, timestamp=int(time.time()) - 3600)), 401, "too old")


def test_invalid_utf8_body_with_a_valid_signature_is_400_not_500(support, post):
    body = b'{"source": "support", "x": "\xff"}'
    assert_error(post(body, headers=standard_headers(body)), 400, "not valid UTF-8")


# --- 400 ---------------------------------------------------------------------

@pytest.mark.parametrize("body, fragment", [
    (b"not json", "not valid JSON"),
    (b'{"source": "shop",', "not valid JSON"),
    (b"[1, 2]", "must be a JSON object, got an array"),
    (b'"shop"', "must be a JSON object, got a string"),
    (b"null", "got null"),
    (b'{"source": "shop", "x": "\xc3\x28"}', "not valid UTF-8"),
    (b'\xef\xbb\xbf{"source": "shop"}', "not valid JSON"),
    (b'{"source": "shop", "n": NaN}', "NaN is not valid JSON"),
    (b'{"source": "shop", "n": -Infinity}', "-Infinity is not valid JSON"),
    (b'{"source": "shop", "n": 1e400}', "out of range"),
    (b'{"source": "shop", "n": ' + b"9" * 5000 + b"}", "too many digits"),
    (b'{"source": "shop", "source": "crm"}', "duplicate key \"source\""),
    (b'{"source": "shop", "data": {"a": 1, "a": 2}}', "duplicate key \"a\""),
    (b'{"source": "shop", "x": "a\\u0000b"}', "\\u0000"),
    (b'{"source": "shop", "x": "\\ud800"}', "lone surrogate"),
    (b'{"source": "shop", "\\udfff": 1}', "lone surrogate"),
    (b'{"source": "shop", "d": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper than 32"),
    (b'{"source": "shop", "d": ' + b"[" * 100000 + b"]" * 100000 + b"}", "nested deeper than 32"),
    (b'{"event_id": "e"}', "field 'source' is missing"),
    (b'{"source": 7}', "field 'source' must be"),
    (b'{"source": ""}', "field 'source' must be"),
])
def test_bodies_that_are_not_a_storable_json_object_are_400(shop, post, body, fragment):
    assert_error(post(body), 400, fragment)
    assert not InboxEvent.objects.exists()


def test_empty_body_is_400(shop, client):
    headers = hmac_headers(b"")
    response = client.generic("POST", URL, b"", content_type="application/json", headers=headers,
                              CONTENT_TYPE="application/json")
    assert_error(response, 400, "body is empty")


def test_surrogate_pairs_and_non_ascii_are_fine(shop, post):
    event = sample_event(data={"shop_id": 1, "first_name": "J\u00fcrgen \U0001F600"})
    body = json.dumps(event).encode()  # ensure_ascii: \ud83d\ude00 escape pair
    assert b"\\ud83d\\ude00" in body
    assert post(body).status_code == 202
    assert InboxEvent.objects.get().payload["data"]["first_name"] == "J\u00fcrgen \U0001F600"


def test_nesting_at_the_limit_is_accepted(shop, post):
    deep = {}
    node = deep
    for _ in range(29):  # envelope (1) + data (2) + 29 more = 31 levels, plus the innermost list = 32
        node["n"] = {}
        node = node["n"]
    node["leaf"] = [1]
    assert post(sample_event(data=deep)).status_code == 202


@pytest.mark.parametrize("field, value, fragment", [
    ("schema_version", "1", "field 'schema_version' must be a positive integer"),
    ("schema_version", True, "field 'schema_version' must be a positive integer"),
    ("schema_version", 1.0, "field 'schema_version' must be a positive integer"),
    ("schema_version", 0, "field 'schema_version' must be a positive integer"),
    ("type", 5, "field 'type' must be a non-empty string"),
    ("occurred_at", "2026-01-14T10:12:00", "field 'occurred_at' must be an ISO 8601 date-time with a timezone"),
    ("occurred_at", "yesterday", "field 'occurred_at'"),
    ("occurred_at", 1768385520, "field 'occurred_at'"),
    ("data", [1], "field 'data' must be a JSON object, got an array"),
    ("data", None, "field 'data' must be a JSON object, got null"),
    ("event_id", 123, "field 'event_id' must be a non-empty string"),
    ("event_id", "", "field 'event_id' must be a non-empty string"),
    ("event_id", None, "field 'event_id' must be a non-empty string"),
    ("event_id", "x" * 201, "field 'event_id'"),
])
def test_ill_typed_envelope_fields_are_400_and_named(shop, post, field, value, fragment):
    assert_error(post(sample_event(**{field: value})), 400, fragment)


@pytest.mark.parametrize("field", ["type", "schema_version", "occurred_at", "data"])
def test_missing_envelope_fields_are_400_and_named(shop, post, field):
    event = sample_event()
    del event[field]
    assert_error(post(event), 400, f"field '{field}' is missing")


def test_envelope_fields_are_checked_only_after_the_signature(shop, post):
    body = body_of({"source": "shop"})
    assert_error(post(body, headers=hmac_headers(body, secret="wrong")), 401)


# --- 415, 413 ----------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx",
                                          "application/json-patch+json", ""])
def test_content_type_not_json_is_415(shop, post, content_type):
    assert_error(post(sample_event(), content_type=content_type), 415, "Content-Type must be application/json")


def test_content_type_check_is_case_insensitive(shop, post):
    assert post(sample_event(), content_type="Application/JSON; charset=UTF-8").status_code == 202


def _oversized() -> bytes:
    event = sample_event(data={"shop_id": 1, "notes": "x" * (256 * 1024)})
    return body_of(event)


def test_body_over_256_kib_is_413(shop, post):
    body = _oversized()
    assert_error(post(body, headers=hmac_headers(body)), 413, "larger than 262144 bytes")


def test_body_of_exactly_the_limit_is_not_413(shop, post):
    event = sample_event(data={"shop_id": 1, "notes": ""})
    padding = 256 * 1024 - len(body_of(event))
    event["data"]["notes"] = "x" * padding
    body = body_of(event)
    assert len(body) == 256 * 1024
    assert post(body, headers=hmac_headers(body)).status_code == 202


def test_lying_content_length_over_the_limit_is_413_without_reading(shop, client):
    body = body_of(sample_event())
    response = client.generic("POST", URL, body, content_type="application/json",
                              headers=hmac_headers(body), CONTENT_LENGTH=str(10 * 1024 * 1024))
    assert_error(response, 413)


def test_absent_content_length_with_an_oversized_body_is_413_under_asgi(shop):
    """ASGI with chunked transfer has no Content-Length: the view reads at most limit + 1 bytes."""
    import io

    from django.core.handlers.asgi import ASGIRequest

    from webhooks.views import CustomerWebhookView

    body = _oversized()
    headers = [(k.lower().encode(), v.encode()) for k, v in hmac_headers(body).items()]
    scope = {"type": "http", "method": "POST", "path": URL, "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"host", b"testserver"), *headers]}
    request = ASGIRequest(scope, io.BytesIO(body))
    assert "CONTENT_LENGTH" not in request.META
    response = CustomerWebhookView.as_view()(request)
    assert response.status_code == 413
    assert json.loads(response.content)["ok"] is False


def test_request_data_too_big_from_django_is_not_raised(shop, post, settings):
    # Even with Django's own upload limit below ours, the view answers the contract's statuses.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    assert post(sample_event()).status_code == 202


# --- 422 ---------------------------------------------------------------------

def test_type_not_accepted_for_the_source_is_422(shop, post):
    assert_error(post(sample_event(type="customer.merge")), 422, "type 'customer.merge' is not accepted from source 'shop'")
    Source.objects.filter(pk=shop.pk).update(event_types=["customer.upsert"])
    assert_error(post(sample_event(type="customer.delete")), 422, "customer.delete")


def test_schema_version_not_accepted_for_the_source_is_422(shop, support, post):
    assert_error(post(sample_event(schema_version=2)), 422, "schema_version 2 is not accepted from source 'shop'")
    event = sample_event(source="support", schema_version=2)
    assert post(event, headers=standard_headers(body_of(event))).status_code == 202


# --- other statuses on the path -----------------------------------------------

@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "options"])
def test_other_methods_are_405_in_the_error_shape(client, db, method):
    response = getattr(client, method)(URL)
    assert_error(response, 405, method.upper())
    assert "POST" in response["Allow"]


@pytest.mark.parametrize("path", ["/webhooks/customer/", "/webhooks/", "/webhooks/orders"])
def test_other_paths_are_404_in_the_error_shape_never_a_redirect(client, db, path):
    response = client.post(path, b"{}", content_type="application/json")
    assert_error(response, 404, "POST /webhooks/customer")


def test_accept_header_does_not_matter(shop, post, client):
    body = body_of(sample_event())
    headers = {**hmac_headers(body), "Accept": "text/html"}
    assert post(body, headers=headers).status_code == 202


def test_no_csrf_or_session_needed(shop, secrets_env):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    body = body_of(sample_event())
    response = strict.generic("POST", URL, body, content_type="application/json", headers=hmac_headers(body))
    assert response.status_code == 202


def test_accepted_path_uses_one_select_and_one_insert(shop, post):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    body = body_of(sample_event())
    headers = hmac_headers(body)
    with CaptureQueriesContext(connection) as queries:
        assert post(body, headers=headers).status_code == 202
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    # savepoints stand in for BEGIN/COMMIT inside the test's transaction
    assert [s for s in statements if s not in ("SAVEPOINT", "RELEASE")] == ["SELECT", "INSERT"], statements
