"""OpenAPI description of POST /webhooks/customer (documentation only: nothing here parses requests)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from canonical.events import EVENT_TYPES

SAMPLE_EVENT = {
    "event_id": "evt_123", "source": "shop", "schema_version": 1,
    "type": "customer.upsert", "occurred_at": "2026-01-14T10:12:00Z",
    "data": {"shop_id": 9981, "email": "Person@Example.com ", "phone": "0049 151 234567",
             "first_name": "Max", "last_name": "Mustermann", "marketing_opt_in": True},
}

DESCRIPTION = """\
Stores one signed customer event in the inbox and acknowledges it (202) once it
is committed; processing happens later, in a worker.

**Signature** (per source): `hmac-sha256` sends `X-Timestamp` (unix seconds) and
`X-Signature` = hex HMAC-SHA256(secret, `"<X-Timestamp>.<raw body>"`), optionally
prefixed `sha256=`; `standard-webhooks` sends `webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64>` (Standard Webhooks). Timestamps more than 300 s
from the server's time are refused.

**Order of checks**: 405 method -> 413 Content-Length -> 415 content type ->
413 body size -> 401 signature headers missing/malformed/stale -> 400 body not a
UTF-8 JSON object (NaN/Infinity, duplicate keys, `\\u0000`, lone surrogates,
nesting over 32 refused) or `source` missing -> 401 unknown/disabled source or
no matching signature (one message) -> 503 source secret not configured ->
400 envelope fields -> 422 type/schema_version not accepted for the source -> 202.

Without `event_id` the dedup key is `sha256:` + SHA-256 of the canonical JSON of
`[source, entity id, occurred_at in UTC, data]`.
"""


class EnvelopeSerializer(serializers.Serializer):
    event_id = serializers.CharField(
        required=False, max_length=200,
        help_text="The sender's unique id of the event; dedup key per source. Optional: computed when absent.",
    )
    source = serializers.SlugField(help_text="The sending system, e.g. shop; picks the secrets.")
    schema_version = serializers.IntegerField(min_value=1, help_text="Layout of `data` (1 or 2).")
    type = serializers.ChoiceField(choices=list(EVENT_TYPES))
    occurred_at = serializers.DateTimeField(help_text="ISO 8601 with a timezone.")
    data = serializers.DictField(help_text="v1: <system>_id, email, phone, ...; v2: ids, contact, name, ...")


class AcceptedSerializer(serializers.Serializer):
    ok = serializers.BooleanField(default=True)
    status = serializers.ChoiceField(choices=["accepted", "duplicate_ignored"])
    event_id = serializers.CharField(help_text="The event_id sent, or the computed sha256:<hex> key.")


class ErrorSerializer(serializers.Serializer):
    ok = serializers.BooleanField(default=False)
    error = serializers.CharField(help_text="What is wrong, naming the field or header.")


def _header(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False, description=description)


HEADER_PARAMETERS = [
    _header("X-Timestamp", "hmac-sha256: unix time in seconds."),
    _header("X-Signature", "hmac-sha256: hex HMAC-SHA256(secret, \"<X-Timestamp>.<raw body>\"), optional sha256= prefix."),
    _header("webhook-id", "standard-webhooks: message id."),
    _header("webhook-timestamp", "standard-webhooks: unix time in seconds."),
    _header("webhook-signature", "standard-webhooks: space-separated v1,<base64> signatures."),
]

RESPONSES = {
    202: OpenApiResponse(AcceptedSerializer, description="Stored (accepted), or already stored (duplicate_ignored)."),
    400: OpenApiResponse(ErrorSerializer, description="Body not a JSON object, or an envelope field missing/ill-typed (named)."),
    401: OpenApiResponse(ErrorSerializer, description="Missing/invalid signature, stale timestamp, unknown or disabled source."),
    405: OpenApiResponse(ErrorSerializer, description="Only POST."),
    413: OpenApiResponse(ErrorSerializer, description="Body over 256 KiB."),
    415: OpenApiResponse(ErrorSerializer, description="Content-Type is not application/json."),
    422: OpenApiResponse(ErrorSerializer, description="type or schema_version not accepted for that source."),
    503: OpenApiResponse(ErrorSerializer, description="Not stored (database unavailable, or the source's secret is not configured): retry."),
}
