"""The sync config's `fields` section -> `SourcePriorityRule` rows (idempotent).

`{"fields": {"email": {"strategy": "source_priority", "sources": ["crm", "shop"]}}}`;
`addresses` is shorthand for both `addresses.billing` and `addresses.shipping`
(a specific entry beside it wins). Fields not in the section keep their rule.
"""

from django.db import transaction

from core.config import SyncConfigError

from .fields import DECIDED_WITH, RULE_ALIASES
from .models import RuleField, SourcePriorityRule


def _parse(name: str, entry) -> tuple[str, list[str]]:
    path = f"fields.{name}"
    if not isinstance(entry, dict):
        raise SyncConfigError(path, "must be an object with strategy and sources")
    unknown = set(entry) - {"strategy", "sources"}
    if unknown:
        raise SyncConfigError(f"{path}.{sorted(unknown)[0]}", "unknown key (expected strategy, sources)")
    strategy = entry.get("strategy", SourcePriorityRule.Strategy.SOURCE_PRIORITY)
    if strategy not in SourcePriorityRule.Strategy.values:
        raise SyncConfigError(f"{path}.strategy", f"must be one of {', '.join(SourcePriorityRule.Strategy.values)}")
    sources = entry.get("sources", [])
    if sources is None:
        sources = []
    if not isinstance(sources, list) or not all(isinstance(s, str) and s.strip() for s in sources):
        raise SyncConfigError(f"{path}.sources", "must be a list of source names")
    sources = [s.strip() for s in sources]
    if len(set(sources)) != len(sources):
        raise SyncConfigError(f"{path}.sources", "a source may appear only once")
    return strategy, sources


def import_fields(config: dict) -> list[str]:
    """Create or update the field rules named in `config["fields"]`; returns one summary line per rule.

    An importer of `settings.SYNC_CONFIG_IMPORTERS`: `fn(config) -> list[str]`, raising
    `SyncConfigError(path, message)` for invalid input (nothing is written then).
    """
    section = config.get("fields")
    if section is None:
        return ["fields: no fields section; field rules left as they are"]
    if not isinstance(section, dict):
        raise SyncConfigError("fields", "must be an object keyed by field name")
    wanted: dict[str, tuple[str, list[str]]] = {}
    for name in sorted(section, key=lambda n: n in RuleField.values):  # aliases first, specific entries win
        if name in DECIDED_WITH:
            with_field = DECIDED_WITH[name]
            raise SyncConfigError(f"fields.{name}", f"travels with {with_field}; configure {with_field}")
        if name not in RuleField.values and name not in RULE_ALIASES:
            raise SyncConfigError(f"fields.{name}", f"unknown field (expected one of "
                                  f"{', '.join([*RuleField.values, *RULE_ALIASES])})")
        parsed = _parse(name, section[name])
        for target in RULE_ALIASES.get(name, [name]):
            wanted[target] = parsed
    lines = []
    with transaction.atomic():
        for name in sorted(wanted):
            strategy, sources = wanted[name]
            rule, created = SourcePriorityRule.objects.get_or_create(
                field=name, defaults={"strategy": strategy, "sources": sources})
            if created:
                state = "created"
            elif (rule.strategy, rule.sources) != (strategy, sources):
                rule.strategy, rule.sources = strategy, sources
                rule.save(update_fields=["strategy", "sources", "updated_at"])
                state = "updated"
            else:
                state = "unchanged"
            lines.append(f"fields.{name}: {strategy} [{', '.join(sources) or 'any source'}] ({state})")
    return lines
