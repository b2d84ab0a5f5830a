"""Schema v1: a flat object; `<system>_id` keys name external ids (`shop_id` -> `shop`)."""

import re

from ..fields import PATCH_FIELDS
from ..problems import problem
from . import RawPatch, register

_ID_KEY = re.compile(r"([a-z][a-z0-9_]*)_id")


@register(1)
def map_v1(data: dict) -> RawPatch:
    patch = RawPatch()
    for key, value in data.items():
        match = _ID_KEY.fullmatch(key) if isinstance(key, str) else None
        if match:
            patch.external_ids[match.group(1)] = value
        elif key in PATCH_FIELDS:
            patch.fields[key] = value
        else:
            patch.problems.append(problem(str(key), value, "unknown field in schema v1; ignored", "warning"))
    return patch
