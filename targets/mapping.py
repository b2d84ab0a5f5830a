"""Per-target field mapping: golden snapshot -> target body, and back.

A mapping is an ordered list of (canonical_field, target_path). Values come
from `canonical.selectors.customer_snapshot`; `external_ids` becomes the
seed's `{"shop_id": "9981", ...}` shape; `external_ids.<system>` is one id.
"""

from typing import Any, Iterable

from canonical.fields import EXPORT_FIELDS, SNAPSHOT_FIELDS

# The seed's bodies (DESIGN.md "Contract: target APIs").
DEFAULT_MAPPINGS: dict[str, list[tuple[str, str]]] = {
    "cdp": [
        ("id", "id"),
        ("external_ids", "external_ids"),
        ("email", "email"),
        ("phone", "phone"),
        ("first_name", "profile.first_name"),
        ("last_name", "profile.last_name"),
        ("marketing_opt_in", "consent.marketing_opt_in"),
        ("last_source", "meta.source"),
        ("updated_at", "meta.updated_at"),
        ("version", "meta.version"),
    ],
    "crm": [
        ("email", "email"),
        ("phone", "phone"),
        ("first_name", "firstName"),
        ("last_name", "lastName"),
        ("external_ids", "externalIds"),
        ("custsync_id", "externalIds.custsync_id"),
    ],
    # Webhook subscribers get the export format (DESIGN.md export_customers).
    "webhook": [(name, name) for name in EXPORT_FIELDS],
}

CANONICAL_FIELDS = (
    *SNAPSHOT_FIELDS,
    "custsync_id",  # the golden id as a string, as external ids are (the crm's externalIds.custsync_id)
)


def is_known_field(canonical_field: str) -> bool:
    return canonical_field in CANONICAL_FIELDS or (
        canonical_field.startswith("external_ids.") and len(canonical_field) > len("external_ids.")
    )


def _value(snapshot: dict[str, Any], canonical_field: str) -> Any:
    if canonical_field == "external_ids":
        return {f"{system}_id": value for system, value in sorted((snapshot.get("external_ids") or {}).items())}
    if canonical_field.startswith("external_ids."):
        return (snapshot.get("external_ids") or {}).get(canonical_field.split(".", 1)[1])
    if canonical_field == "custsync_id":
        return str(snapshot["id"])
    return snapshot.get(canonical_field)


def _set_path(body: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = body
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
        node[parts[-1]].update(value)
    else:
        node[parts[-1]] = dict(value) if isinstance(value, dict) else value


def _get_path(record: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def body_build(*, mappings: Iterable[tuple[str, str]], snapshot: dict[str, Any]) -> dict[str, Any]:
    """The target body for a golden snapshot, rows applied in order."""
    body: dict[str, Any] = {}
    for canonical_field, target_path in mappings:
        _set_path(body, target_path, _value(snapshot, canonical_field))
    return body


def record_to_canonical(*, mappings: Iterable[tuple[str, str]], record: dict[str, Any]) -> dict[str, Any]:
    """A target's record mapped back to comparable canonical fields (reconciliation).

    The inverse of `body_build` for the mapped fields: `external_ids` comes
    back as `{"shop": "9981"}`; keys a later row owns (e.g. `custsync_id`
    inside `externalIds`) are dropped from the earlier dict.
    """
    mappings = list(mappings)
    result: dict[str, Any] = {}
    owned_paths = {path for _, path in mappings}
    for canonical_field, target_path in mappings:
        found, value = _get_path(record, target_path)
        if not found:
            continue
        if canonical_field == "external_ids" and isinstance(value, dict):
            ids = {}
            for key, item in value.items():
                if f"{target_path}.{key}" in owned_paths:
                    continue
                system = key[:-3] if key.endswith("_id") else key
                ids[system] = None if item is None else str(item)
            result["external_ids"] = ids
        elif canonical_field == "custsync_id":
            result["id"] = value
        elif canonical_field.startswith("external_ids."):
            result.setdefault("external_ids", {})[canonical_field.split(".", 1)[1]] = None if value is None else str(value)
        else:
            result[canonical_field] = value
    if "id" in result and result["id"] is not None:
        try:
            result["id"] = int(result["id"])
        except (TypeError, ValueError):
            pass
    return result
