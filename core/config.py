"""The sync config runner: read the file, check its top level, run every app's importer.

Each app owns the sections it imports (`SYNC_CONFIG_IMPORTERS` lists them in
order); this module knows no app. `SyncConfigError.path` names the offending
key, so every error reads like `cdp.base_url: must be an http(s) URL`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from .secrets import REFERENCE_PATTERN

class SyncConfigError(ValueError):
    """The sync config is invalid; `path` names the offending key, e.g. `cdp.base_url`."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


TOP_LEVEL_SECTIONS = ("environment", "cdp", "crm", "webhooks", "sync", "sources", "fields", "targets")


# --- The file ------------------------------------------------------------------

def _no_duplicate_keys(pairs):
    result = dict(pairs)
    if len(result) != len(pairs):
        keys = [key for key, _ in pairs]
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise SyncConfigError("", f"duplicate key {duplicate!r} in one JSON object")
    return result


def sync_config_load(path: str | Path) -> dict:
    """The parsed file; `SyncConfigError` for a missing file, invalid JSON (line, column) or a non-object."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SyncConfigError("", f"file not found: {path}") from None
    except IsADirectoryError:
        raise SyncConfigError("", f"{path} is a directory, not a JSON file") from None
    except UnicodeDecodeError:
        raise SyncConfigError("", f"{path} is not UTF-8 text") from None
    try:
        config = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise SyncConfigError("", f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(config, dict):
        raise SyncConfigError("", f"{path} must hold a JSON object at the top level, got {type(config).__name__}")
    return config


def sync_config_check_shape(config: dict) -> None:
    unknown = sorted(set(config) - set(TOP_LEVEL_SECTIONS))
    if unknown:
        raise SyncConfigError(
            "", f"unknown top-level key(s): {', '.join(unknown)} (known: {', '.join(TOP_LEVEL_SECTIONS)})"
        )


def referenced_variables(value: object) -> list[str]:
    """Every `${VAR}` referenced anywhere in the config, in order of appearance, once each."""
    found: list[str] = []
    stack = [value]
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            stack[0:0] = list(node.values())
        elif isinstance(node, list):
            stack[0:0] = list(node)
        elif isinstance(node, str):
            match = REFERENCE_PATTERN.match(node)
            if match and match.group(1) not in found:
                found.append(match.group(1))
    return found


def unset_variables(config: dict) -> list[str]:
    return [name for name in referenced_variables(config) if not os.environ.get(name)]


def sync_config_importers() -> list[Callable[[dict], list[str]]]:
    importers = []
    for dotted in settings.SYNC_CONFIG_IMPORTERS:
        try:
            importers.append(import_string(dotted))
        except ImportError as exc:
            raise SyncConfigError("", f"importer {dotted} in SYNC_CONFIG_IMPORTERS cannot be imported: {exc}") from None
    return importers


def sync_config_apply(config: dict, *, dry_run: bool = False) -> list[str]:
    """Run every importer in one transaction; with `dry_run`, roll everything back."""
    sync_config_check_shape(config)
    importers = sync_config_importers()
    lines: list[str] = []
    with transaction.atomic():
        for importer in importers:
            lines.extend(importer(config))
        if dry_run:
            transaction.set_rollback(True)
    return lines
