"""Schema v2: nested objects (`ids`, `contact`, `name`, `consent.marketing`).

A nested object sent as null clears every field it holds (`"contact": null`
clears email and phone); a key absent from it leaves that field untouched.
"""

from ..problems import problem
from . import RawPatch, register

# v2 object -> {v2 key: canonical field}
_NESTED = {
    "contact": {"email": "email", "phone": "phone"},
    "name": {"given": "first_name", "family": "last_name"},
}
_CONSENT = {"opt_in": "marketing_opt_in", "at": "marketing_opt_in_at"}


def _object(patch: RawPatch, path: str, value, fields: dict) -> dict | None:
    """The nested object, or None after handling null / a wrong type."""
    if value is None:
        for canonical in fields.values():
            patch.fields[canonical] = None
        return None
    if not isinstance(value, dict):
        patch.problems.append(problem(path, value, f"{path} must be an object"))
        return None
    for key in set(value) - set(fields):
        patch.problems.append(problem(f"{path}.{key}", value[key], "unknown field in schema v2; ignored", "warning"))
    return value


@register(2)
def map_v2(data: dict) -> RawPatch:
    patch = RawPatch()
    for key, value in data.items():
        if key == "ids":
            if not isinstance(value, dict):
                patch.problems.append(problem("ids", value, "ids must be an object of system -> id"))
                continue
            patch.external_ids.update(value)
        elif key in _NESTED:
            nested = _object(patch, key, value, _NESTED[key])
            for sub, canonical in _NESTED[key].items():
                if nested is not None and sub in nested:
                    patch.fields[canonical] = nested[sub]
        elif key == "consent":
            if value is None:
                patch.fields.update({"marketing_opt_in": None, "marketing_opt_in_at": None})
                continue
            consent = _object(patch, "consent", value, {"marketing": "marketing"})
            if consent is not None and "marketing" in consent:
                marketing = _object(patch, "consent.marketing", consent["marketing"], _CONSENT)
                for sub, canonical in _CONSENT.items():
                    if marketing is not None and sub in marketing:
                        patch.fields[canonical] = marketing[sub]
        elif key in ("locale", "addresses"):
            patch.fields[key] = value
        else:
            patch.problems.append(problem(str(key), value, "unknown field in schema v2; ignored", "warning"))
    return patch
