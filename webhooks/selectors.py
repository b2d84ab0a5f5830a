"""Reads of sources and inbox events."""

import os

from custsync_project.secrets import reference_variable

from .models import Source


def source_get_enabled(*, name: str) -> Source | None:
    """The enabled source called `name` (one indexed query), or None."""
    try:
        return Source.objects.only(
            "id", "name", "enabled", "signature_scheme", "secret_refs", "schema_versions", "event_types",
        ).get(name=name, enabled=True)
    except Source.DoesNotExist:
        return None


def secret_ref_status(*, secret_refs: list[str]) -> list[tuple[str, bool]]:
    """(variable name, is it set in this process's environment) per reference; never the value."""
    status = []
    for ref in secret_refs or []:
        try:
            name = reference_variable(ref)
        except Exception:
            status.append(("(not a reference)", False))
            continue
        status.append((name, bool(os.environ.get(name))))
    return status
