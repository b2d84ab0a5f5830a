"""System checks for sources that cannot work as configured (`manage.py check`).

The checks read `Source` rows, so they run by default (not only under
`--database`): the start of `qcluster`, `migrate` and `check` is where an
operator looks, and a source that cannot verify or map its events should be
named there, not found in the inbox later. The table access is guarded: before
`migrate` (no table) or with the database unreachable they report nothing
rather than crash the command that was about to create the table.

Only enabled sources are checked: a disabled one is refused at the door (401)
and needs neither a secret nor a mapper. Messages name the source and the
environment variable, never a value.
"""


from django.core import checks
from django.db import DatabaseError

from canonical.mappers import supported_versions
from core.secrets import unset_variables_of

from .models import Source


def _enabled_sources(app_configs) -> list[Source]:
    if app_configs is not None and not any(config.label == Source._meta.app_label for config in app_configs):
        return []
    try:
        return list(Source.objects.filter(enabled=True).only("name", "secret_refs", "schema_versions"))
    except DatabaseError:  # before migrate, or no database: nothing to check yet
        return []


def check_source_schema_versions(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """webhooks.E001: an accepted schema version without a mapper (its events are accepted, then parked as failed)."""
    supported = set(supported_versions())
    problems = []
    for source in _enabled_sources(app_configs):
        unmapped = sorted(v for v in (source.schema_versions or []) if v not in supported)
        if unmapped:
            problems.append(checks.Error(
                f"source {source.name!r} accepts schema version(s) {', '.join(map(str, unmapped))} "
                f"that have no mapper (mappers exist for {', '.join(map(str, sorted(supported)))})",
                hint="Its events would be accepted with 202 and then parked as failed. Remove the version from "
                     "the source's schema_versions (sync config or admin), or add canonical/mappers/v<N>.py.",
                obj=source, id="webhooks.E001",
            ))
    return problems


def check_source_secrets(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """webhooks.W001 / W002: an enabled source whose secret references resolve to nothing usable.

    Warnings, not errors: the gateway runs and every other source works; this
    source answers 503 ("retry later", so senders retry) until the variable is set.
    """
    problems = []
    for source in _enabled_sources(app_configs):
        refs = source.secret_refs or []
        if not refs:
            problems.append(checks.Warning(
                f"source {source.name!r} has no secret reference",
                hint="Every request from it is answered 503 (no secret to verify the signature). Give it a "
                     "${NAME} reference in the sync config or the admin and set NAME in the environment.",
                obj=source, id="webhooks.W002",
            ))
            continue
        unset = unset_variables_of(refs)
        if unset:
            usable = len(refs) - len(unset)
            effect = (
                "every request from it is answered 503 until one is set"
                if usable == 0 else f"{usable} other reference(s) still verify its requests"
            )
            problems.append(checks.Warning(
                f"source {source.name!r} references environment variable(s) that are not set: "
                f"{', '.join(unset)}; {effect}",
                hint="Set the variable(s) in the environment of the web processes, or remove the reference "
                     "from the source (e.g. an old secret after a rotation).",
                obj=source, id="webhooks.W001",
            ))
    return problems
