"""The importer of the sync config's sources (`webhooks` and `sources` sections).

The file itself is read and checked by the runner (`core.config`), which calls
this importer among `settings.SYNC_CONFIG_IMPORTERS`.

Sources (`import_sources`): every name in `webhooks.accepted_sources` and
every key of the optional `sources` object becomes an enabled `Source`
(a name only in `sources` is accepted too: listing it there is a deliberate
act). A source without a `sources` entry, or an entry without `secret(s)` /
`schema_versions`, falls back to `webhooks.secret` / `webhooks.schema_versions`;
the scheme defaults to hmac-sha256 and the region to DE. Sources in the
database but no longer in the file are disabled, never deleted (inbox events
reference them). Importing the same file twice changes nothing.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from canonical.events import EVENT_TYPES
from core.config import SyncConfigError
from core.secrets import is_reference

from .models import Source, validate_region

SOURCE_KEYS = ("secret", "secrets", "signature_scheme", "default_region", "schema_versions", "event_types", "enabled")
WEBHOOKS_KEYS = ("secret", "accepted_sources", "schema_versions")


# --- Sources -------------------------------------------------------------------

def _object(value: object, path: str) -> dict:
    if not isinstance(value, dict):
        raise SyncConfigError(path, "must be an object")
    return value


def _reference(value: object, path: str) -> str:
    if not is_reference(value):
        # Never echo the value: it may be a real secret pasted into the file.
        raise SyncConfigError(
            path, "must be an environment reference like ${NAME}; literal secrets are not allowed in the file "
                  "(the value is not shown)"
        )
    return value


def _schema_versions(value: object, path: str) -> list[int]:
    if not isinstance(value, list) or not value or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value
    ):
        raise SyncConfigError(path, "must be a non-empty list of positive integers, e.g. [1, 2]")
    return sorted(set(value))


def _source_name(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise SyncConfigError(path, "must be a source name (string)")
    try:
        Source._meta.get_field("name").run_validators(value)
    except ValidationError:
        raise SyncConfigError(path, f"{value!r} is not a valid source name (letters, digits, - and _)") from None
    if len(value) > 64:
        raise SyncConfigError(path, "a source name has at most 64 characters")
    return value


def _wanted_sources(config: dict) -> dict[str, dict]:
    """name -> Source field values, validated; `SyncConfigError` names the key."""
    webhooks = _object(config.get("webhooks", {}), "webhooks")
    unknown = sorted(set(webhooks) - set(WEBHOOKS_KEYS))
    if unknown:
        raise SyncConfigError("webhooks", f"unknown key(s): {', '.join(unknown)} (known: {', '.join(WEBHOOKS_KEYS)})")
    default_secret = _reference(webhooks["secret"], "webhooks.secret") if "secret" in webhooks else None
    default_versions = (
        _schema_versions(webhooks["schema_versions"], "webhooks.schema_versions")
        if "schema_versions" in webhooks else [1]
    )
    accepted = webhooks.get("accepted_sources", [])
    if not isinstance(accepted, list):
        raise SyncConfigError("webhooks.accepted_sources", "must be a list of source names")
    names = [_source_name(name, f"webhooks.accepted_sources[{i}]") for i, name in enumerate(accepted)]
    if len(set(names)) != len(names):
        raise SyncConfigError("webhooks.accepted_sources", "lists a source twice")

    entries = _object(config.get("sources", {}), "sources")
    for name in entries:
        _source_name(name, f"sources.{name}")
        if name not in names:
            names.append(name)

    wanted: dict[str, dict] = {}
    for name in names:
        entry = _object(entries.get(name, {}), f"sources.{name}")
        path = f"sources.{name}"
        unknown = sorted(set(entry) - set(SOURCE_KEYS))
        if unknown:
            raise SyncConfigError(path, f"unknown key(s): {', '.join(unknown)} (known: {', '.join(SOURCE_KEYS)})")
        if "secret" in entry and "secrets" in entry:
            raise SyncConfigError(path, "give either secret or secrets, not both")
        if "secrets" in entry:
            if not isinstance(entry["secrets"], list) or not entry["secrets"]:
                raise SyncConfigError(f"{path}.secrets", "must be a non-empty list of ${NAME} references")
            refs = [_reference(v, f"{path}.secrets[{i}]") for i, v in enumerate(entry["secrets"])]
            if len(set(refs)) != len(refs):
                raise SyncConfigError(f"{path}.secrets", "lists a reference twice")
        elif "secret" in entry:
            refs = [_reference(entry["secret"], f"{path}.secret")]
        elif default_secret is not None:
            refs = [default_secret]
        else:
            where = f"{path}.secret" if name in entries else "webhooks.secret"
            raise SyncConfigError(where, f"source {name!r} has no secret: set webhooks.secret or sources.{name}.secret")

        scheme = entry.get("signature_scheme", Source.SignatureScheme.HMAC_SHA256)
        if scheme not in Source.SignatureScheme.values:
            raise SyncConfigError(f"{path}.signature_scheme", f"must be one of {', '.join(Source.SignatureScheme.values)}")
        region = entry.get("default_region", "DE")
        try:
            validate_region(region)
        except ValidationError:
            raise SyncConfigError(f"{path}.default_region", "must be an upper-case ISO 3166-1 alpha-2 code, e.g. DE") from None
        versions = (
            _schema_versions(entry["schema_versions"], f"{path}.schema_versions")
            if "schema_versions" in entry else default_versions
        )
        event_types = entry.get("event_types", list(EVENT_TYPES))
        if not isinstance(event_types, list) or not event_types or any(t not in EVENT_TYPES for t in event_types):
            raise SyncConfigError(f"{path}.event_types",
                                  f"must be a non-empty list drawn from {', '.join(EVENT_TYPES)}")
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            raise SyncConfigError(f"{path}.enabled", "must be true or false")
        wanted[name] = {
            "enabled": enabled, "signature_scheme": scheme, "secret_refs": refs,
            "schema_versions": versions, "event_types": list(event_types), "default_region": region,
        }
    return wanted


def import_sources(config: dict) -> list[str]:
    """Create/update `Source` rows from `webhooks` and `sources`; disable the ones no longer listed."""
    if "webhooks" not in config and "sources" not in config:
        return ["sources: no webhooks or sources section; sources left as they are"]
    wanted = _wanted_sources(config)
    lines = []
    existing = {source.name: source for source in Source.objects.select_for_update().all()}
    for name, values in wanted.items():
        source = existing.get(name)
        if source is None:
            source = Source(name=name, **values)
            action = "created"
        else:
            changed = [field for field, value in values.items() if getattr(source, field) != value]
            if not changed:
                lines.append(f"source {name}: unchanged")
                continue
            for field in changed:
                setattr(source, field, values[field])
            action = f"updated ({', '.join(changed)})"
        try:
            source.full_clean()
        except ValidationError as exc:
            raise SyncConfigError(f"sources.{name}", "; ".join(exc.messages)) from None
        source.save()
        lines.append(f"source {name}: {action} ({values['signature_scheme']}, "
                     f"{len(values['secret_refs'])} secret reference(s), schema versions {values['schema_versions']})")
    for name, source in existing.items():
        if name not in wanted and source.enabled:
            source.enabled = False
            source.save(update_fields=["enabled", "updated_at"])
            lines.append(f"source {name}: disabled (no longer in the config; kept for its inbox events)")
    return lines
