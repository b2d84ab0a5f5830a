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

from core.times import iso_z

from . import normalizers as n
from .fields import BY_NAME, DECIDED_WITH, FIELDS, TEXT_FIELDS, Kind
from .mappers import RawPatch
from .problems import problem

# One normalizer per single-text kind; the phone's needs the source's region and may warn (below).
TEXT_NORMALIZERS = {Kind.TEXT: n.normalize_name, Kind.EMAIL: n.normalize_email, Kind.LOCALE: n.normalize_locale}
_UNHANDLED = {f.kind for f in FIELDS if f.patch} - {*TEXT_NORMALIZERS, Kind.PHONE, Kind.ADDRESSES, Kind.CONSENT,
                                                      Kind.CONSENT_AT}
if _UNHANDLED:  # a new kind in canonical.fields needs its normalization here
    raise RuntimeError(f"canonical.patch cannot normalize kind(s) {', '.join(sorted(_UNHANDLED))}")
_SYSTEM = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass
class NormalizedPatch:
    external_ids: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)


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
    for name in TEXT_FIELDS:
        normalize = TEXT_NORMALIZERS.get(BY_NAME[name].kind)
        if normalize is not None and name in fields:
            try:
                result.values[name] = normalize(fields[name])
            except n.NormalizationError as error:
                add(problem(name, fields[name], str(error)))

    for name in TEXT_FIELDS:
        if BY_NAME[name].kind == Kind.PHONE and name in fields:
            try:
                phone, warning = n.normalize_phone(fields[name], region=default_region)
                result.values[name] = phone
                if warning:
                    add(problem(name, fields[name], warning, "warning"))
            except n.NormalizationError as error:
                add(problem(name, fields[name], str(error)))

    for f in FIELDS:
        if f.kind == Kind.ADDRESSES and f.name in fields:
            _addresses(f.name, fields[f.name], result)

    for at, flag in DECIDED_WITH.items():
        if flag in fields:
            _consent(flag, at, fields, result)
        elif at in fields:
            add(problem(at, fields[at], f"ignored without {flag} (the two travel together)", "warning"))
    return result


def _addresses(name: str, value, result: NormalizedPatch) -> None:
    """A list sets each address type it contains; null or [] clears every type; other types stay."""
    if value is None or value == []:
        for unit in BY_NAME[name].rule_fields:
            result.values[unit] = None
        return
    if not isinstance(value, list):
        result.problems.append(problem(name, value, f"{name} must be a list of address objects"))
        return
    for index, item in enumerate(value):
        try:
            address = n.normalize_address(item)
        except n.NormalizationError as error:
            result.problems.append(problem(f"{name}[{index}]", item, str(error)))
            continue
        key = f"{name}.{address['type']}"
        if key in result.values:
            result.problems.append(problem(f"{name}[{index}]", item,
                                           f"a second {address['type']} address; the first one is kept", "warning"))
            continue
        result.values[key] = address


def _consent(flag: str, at_name: str, fields: dict, result: NormalizedPatch) -> None:
    try:
        opt_in = n.normalize_bool(fields[flag])
    except n.NormalizationError as error:
        result.problems.append(problem(flag, fields[flag], str(error)))
        return
    if opt_in is None:
        result.values[flag] = None
        return
    at = None
    if fields.get(at_name) is not None:
        try:
            parsed, warning = n.normalize_datetime(fields[at_name])
            at = iso_z(parsed)
            if warning:
                result.problems.append(problem(at_name, fields[at_name], warning, "warning"))
        except n.NormalizationError as error:
            result.problems.append(problem(at_name, fields[at_name], str(error)))
    result.values[flag] = {"opt_in": opt_in, "at": at}
