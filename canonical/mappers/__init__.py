"""Versioned mappers: schema version -> function turning `data` into a `RawPatch`.

Each module `vN.py` in this package registers one mapper with `@register(N)`;
the package imports every `v<digits>` module itself, so adding v3 is a new
file `v3.py` and never an edit of v1 or v2. Mappers only move values into the
canonical shape (`RawPatch`); normalization happens afterwards, the same for
every version (`canonical.patch`).
"""

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..exceptions import MappingError


@dataclass
class RawPatch:
    """Only the fields the event carries; an explicit null is kept as None (clears).

    `fields` is keyed by `canonical.fields.PATCH_FIELDS`; `external_ids` maps system name -> raw id.
    """

    external_ids: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)


Mapper = Callable[[dict], RawPatch]
_REGISTRY: dict[int, Mapper] = {}


def register(version: int) -> Callable[[Mapper], Mapper]:
    def decorator(mapper: Mapper) -> Mapper:
        if version in _REGISTRY and _REGISTRY[version] is not mapper:
            raise RuntimeError(f"schema version {version} already has a mapper")
        _REGISTRY[version] = mapper
        return mapper

    return decorator


def supported_versions() -> list[int]:
    return sorted(_REGISTRY)


def map_data(*, schema_version: int, data) -> RawPatch:
    """Map one event's `data`; raises `MappingError` when the event as a whole is unusable."""
    if isinstance(schema_version, bool) or not isinstance(schema_version, int) or schema_version not in _REGISTRY:
        raise MappingError(
            f"unknown schema_version {schema_version!r}; supported: {', '.join(map(str, supported_versions()))}"
        )
    if not isinstance(data, dict):
        raise MappingError(f"data must be an object, not {type(data).__name__}")
    return _REGISTRY[schema_version](data)


def _load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if re.fullmatch(r"v\d+", module.name):
            importlib.import_module(f"{__name__}.{module.name}")


_load_all()
