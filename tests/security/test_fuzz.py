"""Property-based fuzzing of the gateway and the read API, driven by the OpenAPI schema (hypothesis).

The schema served at /api/schema/ is the input model: request bodies are
generated from `#/components/schemas/Envelope` (then mutated: fields dropped,
retyped, junk added) and query parameters from each operation's declared
parameters (plus undeclared ones). Properties: never a 500, every answer is
JSON in the documented shape, and nothing that is stored is garbage.

No schemathesis dependency: a small JSON-schema-to-strategy converter below
covers what our schema uses. Examples are bounded; the seed is printed
(`SECURITY_SEED=<n>` replays a run).
"""

import json
import os
import random
import time
import urllib.parse
from datetime import datetime

import pytest
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from canonical.tests.factories import apply, make_event
from webhooks.envelope import envelope_validate, json_object_parse
from webhooks.models import InboxEvent

from .conftest import URL, hmac_headers, standard_headers

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]

SEED = int(os.environ.get("SECURITY_SEED") or random.randrange(2**32))
print(f"tests/security/test_fuzz.py: SECURITY_SEED={SEED}")
FUZZ = settings(max_examples=int(os.environ.get("SECURITY_FUZZ_EXAMPLES", 150)), deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])

GATEWAY_STATUSES = {202, 400, 401, 413, 415, 422}
KNOWN_SOURCES = {"shop", "support"}

# --- JSON schema -> strategy ---------------------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
any_json = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=12)


def _resolve(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def from_schema(schema: dict, root: dict) -> st.SearchStrategy:
    schema = _resolve(schema, root)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = {name: from_schema(sub, root) for name, sub in props.items() if name in required}
        optional = {name: from_schema(sub, root) for name, sub in props.items() if name not in required}
        base = st.fixed_dictionaries(fixed, optional=optional)
        if schema.get("additionalProperties") is not None and schema.get("additionalProperties") is not False:
            return st.tuples(base, st.dictionaries(st.text(max_size=10), any_json, max_size=5)).map(
                lambda pair: {**pair[1], **pair[0]})
        return base
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), root), max_size=4)
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum", -(2**40)), max_value=2**40)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        if schema.get("format") == "date-time":
            return st.datetimes(timezones=st.timezones() | st.none()).map(lambda d: d.isoformat())
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: len(s) <= 64)
        return st.text(max_size=schema.get("maxLength", 40))
    return any_json


@pytest.fixture(scope="module")
def openapi(django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _mutate(draw, envelope: dict) -> dict:
    """Steer most examples past the door, then drop, retype or add fields in some, to explore both sides.

    Each choice lists the common case first: hypothesis favours (and shrinks towards) the first element.
    """
    envelope = dict(envelope)
    if draw(st.sampled_from([True, True, True, False])):  # a known source, a served version, an aware time
        envelope["source"] = draw(st.sampled_from(sorted(KNOWN_SOURCES)))
        envelope["schema_version"] = draw(st.sampled_from([1, 2]))
        envelope["occurred_at"] = draw(st.datetimes(timezones=st.timezones())).isoformat()
    for name in list(envelope):
        change = draw(st.sampled_from(["keep"] * 12 + ["delete", "retype"]))
        if change == "delete":
            del envelope[name]
        elif change == "retype":
            envelope[name] = draw(any_json)
    envelope["schema_version"] = draw(st.sampled_from([envelope.get("schema_version")] * 12
                                                      + [3, 0, -1, 2**31, True, "1", 1.0]))
    envelope["source"] = draw(st.sampled_from([envelope.get("source")] * 12 + ["nobody", "", "SHOP", "shop ", 7]))
    return {k: v for k, v in envelope.items() if v is not None or k not in ("schema_version", "source")}


def _encode(draw, envelope: dict) -> bytes:
    style = draw(st.sampled_from(["ascii", "utf8", "indent"]))
    if style == "ascii":
        return json.dumps(envelope).encode()
    if style == "indent":
        return json.dumps(envelope, indent=1, sort_keys=True).encode()
    # raw UTF-8; lone surrogates become invalid UTF-8 (the gateway must answer 400, not crash)
    return json.dumps(envelope, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def signed_requests(draw, openapi):
    root = openapi
    envelope_schema = openapi["paths"]["/webhooks/customer"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    envelope = _mutate(draw, draw(from_schema(envelope_schema, root)))
    body = _encode(draw, envelope)
    source = envelope.get("source") if isinstance(envelope.get("source"), str) else "shop"
    how = draw(st.sampled_from(["right"] * 9 + ["other-scheme", "stale", "garbage", "none"]))
    if how == "right":
        headers = standard_headers(body, msg_id=draw(st.text("abc_123", min_size=1, max_size=20))) \
            if source == "support" else hmac_headers(body)
    elif how == "other-scheme":
        headers = hmac_headers(body) if source == "support" else standard_headers(body)
    elif how == "stale":
        headers = hmac_headers(body, timestamp=int(time.time()) - 10_000)
    elif how == "garbage":
        header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)
        headers = draw(st.fixed_dictionaries({}, optional={
            "X-Timestamp": header_text, "X-Signature": header_text, "webhook-id": header_text,
            "webhook-timestamp": header_text, "webhook-signature": header_text}))
    else:
        headers = {}
    content_type = draw(st.sampled_from(["application/json"] * 10 + ["application/json; charset=utf-8", "text/plain"]))
    return body, headers, content_type


def _assert_gateway_answer(response):
    assert response.status_code in GATEWAY_STATUSES, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    payload = json.loads(response.content)
    if response.status_code == 202:
        assert payload["ok"] is True and payload["status"] in ("accepted", "duplicate_ignored")
    else:
        assert payload["ok"] is False and isinstance(payload["error"], str) and payload["error"]


def assert_inbox_holds_only_valid_envelopes():
    """After fuzzing: every stored event is one the gateway's own rules accept, typed as documented."""
    for row in InboxEvent.objects.select_related("source"):
        assert row.source.name in KNOWN_SOURCES
        assert isinstance(row.schema_version, int) and row.schema_version in row.source.schema_versions
        assert isinstance(row.occurred_at, datetime) and row.occurred_at.utcoffset() is not None
        assert isinstance(row.payload, dict) and isinstance(row.payload.get("data"), dict)
        assert row.type in row.source.event_types
        assert row.event_id
        # the stored payload is itself a body the door accepts, and validates to the same fields
        again = envelope_validate(json_object_parse(json.dumps(row.payload).encode()))
        assert (again.source, again.type, again.schema_version, again.occurred_at) == (
            row.source.name, row.type, row.schema_version, row.occurred_at)


def test_gateway_fuzzed_from_the_openapi_envelope_never_500s_or_stores_garbage(shop, support, client, openapi):
    seen = {}

    @FUZZ
    @seed(SEED)
    @given(request=signed_requests(openapi))
    def run(request):
        body, headers, content_type = request
        response = client.generic("POST", URL, body, content_type=content_type, headers=headers)
        _assert_gateway_answer(response)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1

    run()
    print(f"gateway statuses: {dict(sorted(seen.items()))}; stored: {InboxEvent.objects.count()}")
    assert seen.get(202), "the fuzzer never got past the door: the generator is broken"
    assert_inbox_holds_only_valid_envelopes()


def test_gateway_fuzzed_with_raw_bytes_never_500s(shop, client):
    @FUZZ
    @seed(SEED)
    @given(prefix=st.sampled_from([b"", b'{"source":"shop",', b'{"source":"shop","data":']),
           noise=st.binary(max_size=300))
    def run(prefix, noise):
        body = prefix + noise
        response = client.generic("POST", URL, body, content_type="application/json", headers=hmac_headers(body))
        _assert_gateway_answer(response)

    run()
    assert_inbox_holds_only_valid_envelopes()


# --- the read API ------------------------------------------------------------------------------

query_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def _parameter_strategies(openapi, path):
    strategies = {}
    for parameter in openapi["paths"][path]["get"].get("parameters", []):
        if parameter["in"] != "query":
            continue
        declared = from_schema(parameter.get("schema", {}), openapi).map(str)
        strategies[parameter["name"]] = st.one_of(declared, query_text)
    return strategies


@pytest.fixture
def reader_api(db):
    for i, email in enumerate(["max@example.com", "erika@example.com"]):
        apply(make_event({"shop_id": i, "email": email, "phone": f"0151 2345678{i}"}, source="shop"))
    api = APIClient()
    api.force_authenticate(User.objects.create_superuser("fuzz", "fuzz@example.com", None))
    return api


def test_read_api_fuzzed_from_the_openapi_parameters_never_500s(reader_api, openapi):
    assert "/api/customers/" in openapi["paths"]
    declared = _parameter_strategies(openapi, "/api/customers/")
    assert {"email", "phone", "region", "external_id", "limit", "offset"} <= set(declared)
    seen = {}

    @FUZZ
    @seed(SEED)
    @given(params=st.fixed_dictionaries({}, optional=declared),
           extra=st.dictionaries(query_text, query_text, max_size=3),
           raw=st.one_of(st.none(), st.binary(max_size=60)),
           detail=st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70).map(str), query_text))
    def run(params, extra, raw, detail):
        if detail is not None:
            url = f"/api/customers/{urllib.parse.quote(detail, safe='')}/"
        else:
            url = "/api/customers/"
        query = urllib.parse.urlencode({**extra, **params})
        if raw is not None:
            query += "&email=" + urllib.parse.quote_from_bytes(raw)
        response = reader_api.get(f"{url}?{query}")
        assert response.status_code in (200, 400, 404), (url, query, response.status_code, response.content[:300])
        if response.status_code != 404:  # a path outside the router is Django's plain 404 page
            json.loads(response.content)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1

    run()
    print(f"read API statuses: {dict(sorted(seen.items()))}")
    assert seen.get(200)


def test_read_api_without_credentials_is_401_whatever_the_query(openapi, db):
    anonymous = APIClient()

    @settings(FUZZ, max_examples=40)
    @seed(SEED)
    @given(path=st.sampled_from(sorted(openapi["paths"])), query=st.dictionaries(query_text, query_text, max_size=3),
           pk=st.integers(min_value=0, max_value=2**31))
    def run(path, query, pk):
        if not path.startswith("/api/customers"):
            return
        url = path.replace("{id}", str(pk)) + "?" + urllib.parse.urlencode(query)
        response = anonymous.get(url)
        assert response.status_code == 401, (url, response.status_code)
        assert response.json().get("detail")

    run()
