"""From a mapped `RawPatch` to normalized per-field values, the same for every schema version.

Values are keyed by *rule field* (the unit a `SourcePriorityRule` decides):
addresses split into `addresses.billing` / `addresses.shipping`, and the
consent pair travels as one value `{"opt_in": bool, "at": iso-or-None}` under
`marketing_opt_in`. Every value is JSON, as stored in `SourceValue.value`;
None is an explicit clear.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from . import normalizers as n
from .mappers import RawPatch
from .problems import problem

RULE_FIELDS = (
    "email", "phone", "first_name", "last_name", "locale",
    "addresses.billing", "addresses.shipping", "marketing_opt_in",
)
_SYSTEM = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass
class NormalizedPatch:
    external_ids: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def patch_normalize(*, raw: RawPatch, default_region: str) -> NormalizedPatch:
    result = NormalizedPatch(problems=list(raw.problems))
    add = result.problems.append

    for system, value in raw.external_ids.items():
        system_name = str(system).strip().lower()
        if not _SYSTEM.fullmatch(system_name):
            add(problem(f"external_ids.{system}", system, "system name must be letters, digits and _"))
            continue
        try:
            result.external_ids[system_name] = n.normalize_external_id(value)
        except n.NormalizationError as error:
            add(problem(f"external_ids.{system_name}", value, str(error)))

    fields = raw.fields
    simple = {
        "email": n.normalize_email,
        "first_name": n.normalize_name,
        "last_name": n.normalize_name,
        "locale": n.normalize_locale,
    }
    for name, normalize in simple.items():
        if name in fields:
            try:
                result.values[name] = normalize(fields[name])
            except n.NormalizationError as error:
                add(problem(name, fields[name], str(error)))

    if "phone" in fields:
        try:
            phone, warning = n.normalize_phone(fields["phone"], region=default_region)
            result.values["phone"] = phone
            if warning:
                add(problem("phone", fields["phone"], warning, "warning"))
        except n.NormalizationError as error:
            add(problem("phone", fields["phone"], str(error)))

    if "addresses" in fields:
        _addresses(fields["addresses"], result)

    if "marketing_opt_in" in fields:
        _consent(fields, result)
    elif "marketing_opt_in_at" in fields:
        add(problem("marketing_opt_in_at", fields["marketing_opt_in_at"],
                    "ignored without marketing_opt_in (the two travel together)", "warning"))
    return result


def _addresses(value, result: NormalizedPatch) -> None:
    """A list sets each address type it contains; null or [] clears both; other types stay."""
    if value is None or value == []:
        result.values["addresses.billing"] = None
        result.values["addresses.shipping"] = None
        return
    if not isinstance(value, list):
        result.problems.append(problem("addresses", value, "addresses must be a list of address objects"))
        return
    for index, item in enumerate(value):
        try:
            address = n.normalize_address(item)
        except n.NormalizationError as error:
            result.problems.append(problem(f"addresses[{index}]", item, str(error)))
            continue
        key = f"addresses.{address['type']}"
        if key in result.values:
            result.problems.append(problem(f"addresses[{index}]", item,
                                           f"a second {address['type']} address; the first one is kept", "warning"))
            continue
        result.values[key] = address


def _consent(fields: dict, result: NormalizedPatch) -> None:
    try:
        opt_in = n.normalize_bool(fields["marketing_opt_in"])
    except n.NormalizationError as error:
        result.problems.append(problem("marketing_opt_in", fields["marketing_opt_in"], str(error)))
        return
    if opt_in is None:
        result.values["marketing_opt_in"] = None
        return
    at = None
    if fields.get("marketing_opt_in_at") is not None:
        try:
            parsed, warning = n.normalize_datetime(fields["marketing_opt_in_at"])
            at = _iso(parsed)
            if warning:
                result.problems.append(problem("marketing_opt_in_at", fields["marketing_opt_in_at"], warning, "warning"))
        except n.NormalizationError as error:
            result.problems.append(problem("marketing_opt_in_at", fields["marketing_opt_in_at"], str(error)))
    result.values["marketing_opt_in"] = {"opt_in": opt_in, "at": at}
