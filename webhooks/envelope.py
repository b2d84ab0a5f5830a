"""The envelope: strict JSON at the door, field checks, and the computed dedup key.

Strictness is decided here, before anything is stored, because PostgreSQL's
jsonb refuses what Python's `json` accepts: NaN/Infinity (and numbers that
overflow to infinity), lone surrogates and U+0000 in strings are refused with
a 400 that says so, as are duplicate keys (ambiguous: which one counts?) and
nesting deeper than `MAX_DEPTH`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import WebhookError

MAX_DEPTH = 32
MAX_EVENT_ID_LENGTH = 200
MAX_SOURCE_LENGTH = 64
MAX_TYPE_LENGTH = 64
DEDUP_KEY_PREFIX = "sha256:"

# Only reachable through \u escapes: the body is valid UTF-8 (no surrogates) and
# json refuses raw control characters inside strings.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _bad_request(message: str) -> WebhookError:
    return WebhookError(400, message)


class _StrictJSONError(ValueError):
    pass


def _pairs(pairs: list[tuple[str, object]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _StrictJSONError(f"duplicate key {json.dumps(key)[:80]} in a JSON object")
            seen.add(key)
    return result


def _constant(name: str):
    raise _StrictJSONError(f"{name} is not valid JSON (PostgreSQL cannot store it)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _StrictJSONError(f"number {text[:40]} is out of range (it would be infinite)")
    return value


def json_object_parse(body: bytes) -> dict:
    """The body as a JSON object, or `WebhookError(400)` naming what is wrong."""
    if not body:
        raise _bad_request("body is empty: expected a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad_request(f"body is not valid UTF-8 (invalid byte at offset {exc.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_finite_float)
    except _StrictJSONError as exc:
        raise _bad_request(f"body is not acceptable JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise _bad_request(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise _bad_request(f"body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        # int() refuses more than sys.get_int_max_str_digits() digits.
        raise _bad_request("body is not acceptable JSON: a number has too many digits") from None
    if not isinstance(value, dict):
        raise _bad_request(f"body must be a JSON object, got {_json_type(value)}")
    _check_tree(value, check_strings=b"\\u" in body)
    return value


def _check_tree(root: dict, *, check_strings: bool) -> None:
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _bad_request(f"body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for key, item in node.items():
                if check_strings and _UNSTORABLE.search(key):
                    raise _bad_request(_unstorable_message())
                if isinstance(item, (dict, list)):
                    stack.append((item, depth + 1))
                elif check_strings and isinstance(item, str) and _UNSTORABLE.search(item):
                    raise _bad_request(_unstorable_message())
        else:
            for item in node:
                if isinstance(item, (dict, list)):
                    stack.append((item, depth + 1))
                elif check_strings and isinstance(item, str) and _UNSTORABLE.search(item):
                    raise _bad_request(_unstorable_message())


def _unstorable_message() -> str:
    return "body contains \\u0000 or a lone surrogate (\\ud800-\\udfff) in a string; these cannot be stored"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def source_name_get(obj: dict) -> str:
    """The envelope's `source`: needed (unverified) to pick the secrets. 400 when missing or ill-typed."""
    if "source" not in obj:
        raise _bad_request("field 'source' is missing")
    source = obj["source"]
    if not isinstance(source, str) or not source or len(source) > MAX_SOURCE_LENGTH:
        raise _bad_request(f"field 'source' must be a non-empty string of at most {MAX_SOURCE_LENGTH} characters")
    return source


@dataclass(frozen=True)
class Envelope:
    source: str
    event_id: str | None
    type: str
    schema_version: int
    occurred_at: datetime
    data: dict


def envelope_validate(obj: dict) -> Envelope:
    """Field checks after authentication; each 400 names the field. Unknown extra fields are allowed."""
    source = source_name_get(obj)

    event_id = obj.get("event_id")
    if "event_id" in obj and (
        not isinstance(event_id, str) or not event_id.strip() or len(event_id) > MAX_EVENT_ID_LENGTH
    ):
        raise _bad_request(
            f"field 'event_id' must be a non-empty string of at most {MAX_EVENT_ID_LENGTH} characters when present"
        )

    if "type" not in obj:
        raise _bad_request("field 'type' is missing")
    event_type = obj["type"]
    if not isinstance(event_type, str) or not event_type or len(event_type) > MAX_TYPE_LENGTH:
        raise _bad_request(f"field 'type' must be a non-empty string of at most {MAX_TYPE_LENGTH} characters")

    if "schema_version" not in obj:
        raise _bad_request("field 'schema_version' is missing")
    version = obj["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= 2**31 - 1:
        raise _bad_request("field 'schema_version' must be a positive integer, e.g. 1")

    if "occurred_at" not in obj:
        raise _bad_request("field 'occurred_at' is missing")
    occurred_at = _parse_occurred_at(obj["occurred_at"])

    if "data" not in obj:
        raise _bad_request("field 'data' is missing")
    if not isinstance(obj["data"], dict):
        raise _bad_request(f"field 'data' must be a JSON object, got {_json_type(obj['data'])}")

    return Envelope(
        source=source, event_id=event_id, type=event_type, schema_version=version,
        occurred_at=occurred_at, data=obj["data"],
    )


def _parse_occurred_at(value: object) -> datetime:
    message = "field 'occurred_at' must be an ISO 8601 date-time with a timezone, e.g. 2026-01-14T10:12:00Z"
    if not isinstance(value, str) or len(value) > 64:
        raise _bad_request(message)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad_request(message) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _bad_request(message)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        # e.g. 0001-01-01T00:00:00+01:00 is before datetime.min once in UTC
        raise _bad_request("field 'occurred_at' is out of range once converted to UTC") from None


def entity_id_get(*, source: str, schema_version: int, data: dict) -> str:
    """The source's own id of the customer: v1 `<source>_id`, v2+ `ids.<source>`; "" when absent."""
    if schema_version == 1:
        value = data.get(f"{source}_id")
    else:
        ids = data.get("ids")
        value = ids.get(source) if isinstance(ids, dict) else None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return ""
    return str(value)


def dedup_key_compute(envelope: Envelope) -> str:
    """`sha256:<hex>` of the canonical JSON array [source, entity id, occurred_at (UTC), data].

    Canonical JSON: keys sorted, no whitespace (separators "," and ":"),
    non-ASCII kept as UTF-8; occurred_at as UTC `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`,
    so the same instant written with another offset gives the same key.
    """
    occurred = envelope.occurred_at.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z"
    entity = entity_id_get(source=envelope.source, schema_version=envelope.schema_version, data=envelope.data)
    canonical = json.dumps(
        [envelope.source, entity, occurred, envelope.data],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
    )
    return DEDUP_KEY_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
