"""The sync config's `cdp`, `crm`, `targets` and `sync` sections -> `Target` rows.

`cdp` creates the target `cdp` (bearer `token`), `crm` the target `crm`
(`api_key`); each `targets` entry is named by `name`. Any of them may use
`"auth": "oauth2"` with `token_url`, `client_id` and `client_secret`.
`sync.max_retries` / `sync.backoff_seconds` / `sync.dead_letter_queue` /
`sync.retry_window_hours` are the defaults for every target (a section may
override them). Secrets must be
`${VAR}` references. Importing twice changes nothing; targets missing from
the file are disabled, never deleted (their history stays).
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from core.config import SyncConfigError
from core.secrets import is_reference

from .delivery import DEFAULT_RETRY_WINDOW_HOURS, MAX_RETRY_WINDOW_HOURS
from .models import Target
from .services import target_mappings_ensure_defaults, target_runtime_ensure
from .validators import is_http_url

SECRET_KEY_BY_AUTH = {
    Target.AuthKind.BEARER: "token",
    Target.AuthKind.API_KEY: "api_key",
    Target.AuthKind.STANDARD_WEBHOOKS: "secret",
}
DEFAULT_AUTH_BY_KIND = {
    Target.Kind.CDP: Target.AuthKind.BEARER,
    Target.Kind.CRM: Target.AuthKind.API_KEY,
    Target.Kind.WEBHOOK: Target.AuthKind.STANDARD_WEBHOOKS,
}
SECTION_KEYS = {
    "name", "kind", "base_url", "url", "token", "api_key", "secret", "auth", "token_url", "client_id",
    "client_secret", "scope", "timeout_seconds", "rate_limit_per_minute", "max_retries", "backoff_seconds",
    "dead_letter_queue", "enabled", "retry_window_hours",
}


def _number(section: dict, key: str, path: str, default, *, integer: bool = False, minimum: float = 0):
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise SyncConfigError(f"{path}.{key}", f"must be {'an integer' if integer else 'a number'}")
    if value < minimum:
        raise SyncConfigError(f"{path}.{key}", f"must be at least {minimum}")
    return value


def _window(section: dict, path: str, default: float) -> float:
    """Hours a message may wait out an outage: more than 0, at most MAX_RETRY_WINDOW_HOURS."""
    value = section.get("retry_window_hours", default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise SyncConfigError(f"{path}.retry_window_hours", "must be a number of hours")
    if not 0 < value <= MAX_RETRY_WINDOW_HOURS:
        raise SyncConfigError(f"{path}.retry_window_hours",
                              f"must be more than 0 and at most {MAX_RETRY_WINDOW_HOURS:g} (hours)")
    return float(value)


def _reference(section: dict, key: str, path: str) -> str:
    value = section.get(key)
    if value is None or value == "":
        raise SyncConfigError(f"{path}.{key}", "is required")
    if not is_reference(value):
        # Never echo the value: it may be a pasted secret.
        raise SyncConfigError(f"{path}.{key}", "must be an environment reference like ${NAME}, not a literal value")
    return value


def _full_clean(target: Target, name: str) -> None:
    """Model validation as a SyncConfigError naming the target and the field."""
    try:
        target.full_clean()
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise SyncConfigError(f"targets.{name}.{field}", "; ".join(messages)) from None


def _url(value: Any, path: str) -> str:
    if not is_http_url(value):
        raise SyncConfigError(path, "must be an http(s) URL")
    return value


def _sync_defaults(config: dict) -> dict:
    sync = config.get("sync") or {}
    if not isinstance(sync, dict):
        raise SyncConfigError("sync", "must be an object")
    dlq = sync.get("dead_letter_queue", True)
    if not isinstance(dlq, bool):
        raise SyncConfigError("sync.dead_letter_queue", "must be true or false")
    return {
        "max_retries": _number(sync, "max_retries", "sync", 5, integer=True),
        "backoff_seconds": _number(sync, "backoff_seconds", "sync", 0.5),
        "dead_letter_queue": dlq,
        "retry_window_hours": _window(sync, "sync", DEFAULT_RETRY_WINDOW_HOURS),
    }


def _target_fields(section: Any, *, path: str, name: str, kind: str, defaults: dict) -> dict:
    if not isinstance(section, dict):
        raise SyncConfigError(path, "must be an object")
    unknown = sorted(set(section) - SECTION_KEYS)
    if unknown:
        raise SyncConfigError(f"{path}.{unknown[0]}", "unknown key")
    url_key = "url" if kind == Target.Kind.WEBHOOK and "url" in section else "base_url"
    fields: dict[str, Any] = {
        "kind": kind,
        "base_url": _url(section.get(url_key), f"{path}.{url_key}"),
        "timeout_seconds": _number(section, "timeout_seconds", path, 20, minimum=0.1),
        "rate_limit_per_minute": _number(section, "rate_limit_per_minute", path, 600, integer=True),
        "max_retries": _number(section, "max_retries", path, defaults["max_retries"], integer=True),
        "backoff_seconds": _number(section, "backoff_seconds", path, defaults["backoff_seconds"]),
        "dead_letter_queue": section.get("dead_letter_queue", defaults["dead_letter_queue"]),
        "retry_window_hours": _window(section, path, defaults["retry_window_hours"]),
        "enabled": section.get("enabled", True),
        "oauth_token_url": "", "oauth_client_id": "", "oauth_scope": "",
    }
    for flag in ("dead_letter_queue", "enabled"):
        if not isinstance(fields[flag], bool):
            raise SyncConfigError(f"{path}.{flag}", "must be true or false")
    auth = section.get("auth") or DEFAULT_AUTH_BY_KIND[kind]
    if auth not in Target.AuthKind.values:
        raise SyncConfigError(f"{path}.auth", f"must be one of {', '.join(Target.AuthKind.values)}")
    if kind == Target.Kind.WEBHOOK and auth == Target.AuthKind.STANDARD_WEBHOOKS and "secret" not in section:
        raise SyncConfigError(f"{path}.secret", "is required (a ${NAME} reference to a whsec_ secret)")
    fields["auth_kind"] = auth
    if auth == Target.AuthKind.OAUTH2:
        fields["oauth_token_url"] = _url(section.get("token_url"), f"{path}.token_url")
        client_id = section.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise SyncConfigError(f"{path}.client_id", "is required")
        fields["oauth_client_id"] = client_id
        scope = section.get("scope", "")
        if not isinstance(scope, str):
            raise SyncConfigError(f"{path}.scope", "must be a string")
        fields["oauth_scope"] = scope
        fields["secret_refs"] = {"client_secret": _reference(section, "client_secret", path)}
    elif auth == Target.AuthKind.NONE:
        fields["secret_refs"] = {}
    else:
        key = SECRET_KEY_BY_AUTH[auth]
        fields["secret_refs"] = {key: _reference(section, key, path)}
    return fields


def _specs(config: dict) -> list[tuple[str, dict]]:
    defaults = _sync_defaults(config)
    specs: list[tuple[str, dict]] = []
    for kind in (Target.Kind.CDP, Target.Kind.CRM):
        if config.get(kind) is not None:
            specs.append((kind.value, _target_fields(config[kind], path=kind.value, name=kind.value, kind=kind,
                                                     defaults=defaults)))
    extra = config.get("targets") or []
    if not isinstance(extra, list):
        raise SyncConfigError("targets", "must be a list")
    for index, section in enumerate(extra):
        path = f"targets[{index}]"
        if not isinstance(section, dict):
            raise SyncConfigError(path, "must be an object")
        name = section.get("name")
        if not isinstance(name, str) or not name or not name.replace("-", "").replace("_", "").isalnum():
            raise SyncConfigError(f"{path}.name", "must be a name of letters, digits, - and _")
        kind = section.get("kind")
        if kind not in Target.Kind.values:
            raise SyncConfigError(f"{path}.kind", f"must be one of {', '.join(Target.Kind.values)}")
        if any(existing == name for existing, _ in specs):
            raise SyncConfigError(f"{path}.name", f"target {name!r} is defined twice")
        specs.append((name, _target_fields(section, path=path, name=name, kind=Target.Kind(kind), defaults=defaults)))
    return specs


def import_targets(config: dict) -> list[str]:
    """Create/update the targets of the config; returns one summary line per change."""
    if not isinstance(config, dict):
        raise SyncConfigError("", "the sync config must be a JSON object")
    specs = _specs(config)
    lines: list[str] = []
    with transaction.atomic():
        for name, fields in specs:
            target = Target.objects.filter(name=name).first()
            if target is None:
                target = Target(name=name, **fields)
                _full_clean(target, name)
                target.save()
                lines.append(f"target {name}: created ({fields['kind']}, {fields['auth_kind']})")
            else:
                changed = [key for key, value in fields.items() if getattr(target, key) != value]
                if changed:
                    for key in changed:
                        setattr(target, key, fields[key])
                    _full_clean(target, name)
                    target.save()
                    lines.append(f"target {name}: updated ({', '.join(sorted(changed))})")
                    if "enabled" in changed and target.enabled:
                        lines.append(f"target {name}: re-enabled; it missed the changes made while it was disabled: "
                                     f"run `manage.py resync_target {name}` (or Resync in the admin)")
                else:
                    lines.append(f"target {name}: unchanged")
            target_mappings_ensure_defaults(target=target)
            target_runtime_ensure(target_id=target.pk)
        names = [name for name, _ in specs]
        for name in Target.objects.filter(enabled=True).exclude(name__in=names).values_list("name", flat=True):
            lines.append(f"target {name}: disabled (not in the config)")
        Target.objects.filter(enabled=True).exclude(name__in=names).update(enabled=False)
    return lines
