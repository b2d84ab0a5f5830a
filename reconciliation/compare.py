"""Comparing one golden record with what a target holds: pure functions, no database.

Everything is compared in canonical space: the golden snapshot goes through
the target's mapping (`adapter.build_body`) and back (`record_to_canonical`),
exactly like the target's record and the body custsync last delivered, so
the three sides pass through the same code. Then each value gets the
canonical normalization that applies to it (email lower-cased, phone E.164,
whitespace collapsed), so a target that only re-formats a value is not drift.

Not compared:
- `id` (the join key) and the volatile metadata `version`, `updated_at`,
  `last_source` (cdp's `meta.*`): they change on every re-send without the
  customer's data changing, and a target that lags one version behind with
  the same data holds the right data.
- Empty equals absent: None, "", [] and {} are the same (many APIs drop empty keys).
"""

from typing import Any

from canonical import fields as registry
from canonical import normalizers as n
from canonical.patch import TEXT_NORMALIZERS
from canonical.problems import excerpt

from .models import SubClass

# The join key, and the metadata the registry marks volatile (version, updated_at, last_source).
VOLATILE_FIELDS = frozenset({"id", *registry.VOLATILE_FIELDS})
# The fields a discrepancy can name: every exported field but the join key and volatile metadata.
COMPARABLE_FIELDS = tuple(name for name in registry.EXPORT_FIELDS if name not in VOLATILE_FIELDS)


def compared_fields(mappings: list[tuple[str, str]]) -> list[str]:
    """The canonical fields a target's mapping sends, minus the join key and volatile metadata."""
    seen: list[str] = []
    for canonical_field, _ in mappings:
        name = "external_ids" if canonical_field.startswith("external_ids") else canonical_field
        if name not in VOLATILE_FIELDS and name not in seen:
            seen.append(name)
    return seen


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _try(function, value):
    try:
        result = function(value)
    except (n.NormalizationError, TypeError, ValueError):
        return value
    return result


def _clean(name: str, value: Any) -> Any:
    """The cheap part, applied to every side: empty -> None, external ids as sorted strings."""
    if _empty(value):
        return None
    if name == "external_ids" and isinstance(value, dict):
        cleaned = {str(k): str(v) for k, v in value.items() if not _empty(v)}
        return dict(sorted(cleaned.items())) or None
    return value


def normalize_value(name: str, value: Any) -> Any:
    """The canonical normalization of one value; a value it refuses is compared as it is."""
    value = _clean(name, value)
    if value is None:
        return None
    kind = registry.BY_NAME[name].kind if name in registry.BY_NAME else None
    if kind == registry.Kind.PHONE:
        return _try(lambda v: n.normalize_phone(v, region="")[0], value)
    if kind in TEXT_NORMALIZERS:
        return _try(TEXT_NORMALIZERS[kind], value)
    return value


def comparable(canonical: dict[str, Any] | None, fields: list[str]) -> dict[str, Any] | None:
    """A record mapped back to canonical fields, reduced to `fields`, empties cleaned."""
    if canonical is None:
        return None
    return {name: _clean(name, canonical.get(name)) for name in fields}


def differing_fields(golden: dict[str, Any], target: dict[str, Any], fields: list[str]) -> list[str]:
    """Fields where the target differs from golden even after normalizing the target's value.

    Golden values are normalized already (canonical stores them so), so only
    the target's value is normalized, and only when the raw values differ:
    the common case (equal) costs one comparison.
    """
    return [
        name for name in fields
        if golden.get(name) != target.get(name) and golden.get(name) != normalize_value(name, target.get(name))
    ]


def drift_sub_class(*, golden: Any, delivered: Any, target: Any, has_delivered: bool) -> str:
    """The three-way verdict for one field whose golden value differs from the target's.

    - nothing delivered (or only a delete) -> never_delivered
    - the target differs from what custsync sent -> edited_in_target (someone
      or something changed it there after our delivery)
    - the target holds what custsync sent, which differs from golden ->
      delivery_behind (the newer golden state is pending, failed or dead)
    """
    if not has_delivered:
        return SubClass.NEVER_DELIVERED
    if target != delivered:
        return SubClass.EDITED_IN_TARGET
    return SubClass.DELIVERY_BEHIND


SUB_CLASS_PRIORITY = (SubClass.EDITED_IN_TARGET, SubClass.DELIVERY_BEHIND, SubClass.NEVER_DELIVERED)


def record_sub_class(per_field: list[str]) -> str:
    """One verdict per record: a hand edit anywhere matters most, then a lagging delivery."""
    for candidate in SUB_CLASS_PRIORITY:
        if candidate in per_field:
            return candidate
    return SubClass.NEVER_DELIVERED


def value_excerpt(value: Any) -> Any:
    """Short enough for the admin; never a whole record."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return excerpt(value)
    if isinstance(value, dict) and len(value) <= 8:
        return {str(k)[:40]: value_excerpt(v) for k, v in value.items()}
    return excerpt(value)
