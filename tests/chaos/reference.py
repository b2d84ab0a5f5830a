"""An independent reference model of the field rules (DESIGN.md "Canonical model and rules").

Written from the design text, not from `canonical/`: it maps v1/v2 envelopes
itself, normalizes the workload's (nearly pre-normalized) values itself, and
decides each field as the design says:

- per field, keep each source's latest value (later occurred_at; tie: larger
  event id); an explicit null is a value (it clears);
- a source not listed in the field's rule may not set it;
- source_priority: the best-ranked source that sent a value wins; equal
  rank: later occurred_at, then larger event id;
- last_write_wins: later occurred_at wins; tie: better rank, then larger event id.

It covers what the workload generates (upserts, no merges, no erasures, no
steward overrides); identity is the customer's shop id, carried by every event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

RULE_FIELDS = ("email", "phone", "first_name", "last_name", "locale",
               "addresses.billing", "addresses.shipping", "marketing_opt_in")


@dataclass(frozen=True)
class FieldRule:
    strategy: str  # "source_priority" or "last_write_wins"
    sources: tuple[str, ...]  # best first; empty: every source, equal rank

    def rank(self, source: str) -> int | None:
        if not self.sources:
            return 0
        return self.sources.index(source) if source in self.sources else None


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _space(value):
    return " ".join(value.split()) if isinstance(value, str) else value


def _address(raw: dict) -> dict:
    return {"type": raw["type"], **{k: _space(raw.get(k)) or None for k in ("line1", "line2", "postal_code", "city")},
            "country": (raw.get("country") or "").upper() or None}


def event_values(envelope: dict) -> tuple[dict[str, str], dict[str, object]]:
    """(external ids, {rule field: normalized value}) of one envelope, v1 or v2."""
    data = envelope["data"]
    if envelope["schema_version"] == 1:
        ids = {key[:-3]: str(value) for key, value in data.items() if key.endswith("_id")}
        flat = {key: value for key, value in data.items() if not key.endswith("_id")}
    else:
        ids = {key: str(value) for key, value in data["ids"].items()}
        flat = {}
        flat.update(data.get("contact") or {})
        for v2, key in (("given", "first_name"), ("family", "last_name")):
            if v2 in (data.get("name") or {}):
                flat[key] = data["name"][v2]
        for key in ("locale", "addresses"):
            if key in data:
                flat[key] = data[key]
        marketing = (data.get("consent") or {}).get("marketing")
        if marketing is not None:
            flat["marketing_opt_in"] = marketing.get("opt_in")
            flat["marketing_opt_in_at"] = marketing.get("at")
    values: dict[str, object] = {}
    if "email" in flat:
        values["email"] = flat["email"].strip().lower() if flat["email"] is not None else None
    for key in ("phone", "locale"):
        if key in flat:
            values[key] = flat[key]
    for key in ("first_name", "last_name"):
        if key in flat:
            values[key] = _space(flat[key]) or None
    for address in flat.get("addresses") or []:
        values[f"addresses.{address['type']}"] = _address(address)
    if "marketing_opt_in" in flat:
        opt_in = flat["marketing_opt_in"]
        values["marketing_opt_in"] = None if opt_in is None else {"opt_in": opt_in, "at": flat.get("marketing_opt_in_at")}
    return ids, values


def _winner(rule: FieldRule, latest: dict[str, tuple]) -> object:
    """latest: source -> (occurred_at, event_id, value); the winning value or None."""
    allowed = [(source, *entry) for source, entry in latest.items() if rule.rank(source) is not None]
    if not allowed:
        return None
    if rule.strategy == "last_write_wins":
        key = lambda c: (c[1], -rule.rank(c[0]), c[2])  # noqa: E731
    else:
        key = lambda c: (-rule.rank(c[0]), c[1], c[2])  # noqa: E731
    return max(allowed, key=key)[3]


def expected_golden(envelopes: list[dict], rules: dict[str, FieldRule], *, key_system: str = "shop") -> dict[str, dict]:
    """{customer key (its `key_system` id): the golden fields the design predicts}."""
    latest: dict[str, dict[str, dict[str, tuple]]] = {}
    ids_of: dict[str, dict[str, str]] = {}
    seen = set()
    for envelope in envelopes:
        if (envelope["source"], envelope["event_id"]) in seen:
            continue  # a duplicate delivery is the same event
        seen.add((envelope["source"], envelope["event_id"]))
        ids, values = event_values(envelope)
        key = ids[key_system]
        ids_of.setdefault(key, {}).update(ids)
        when = _when(envelope["occurred_at"])
        for name, value in values.items():
            per_source = latest.setdefault(key, {}).setdefault(name, {})
            current = per_source.get(envelope["source"])
            if current is None or (when, envelope["event_id"]) > current[:2]:
                per_source[envelope["source"]] = (when, envelope["event_id"], value)
    result = {}
    for key, fields in latest.items():
        decided = {name: _winner(rules.get(name, FieldRule("source_priority", ())), fields.get(name, {}))
                   for name in RULE_FIELDS}
        consent = decided["marketing_opt_in"]
        result[key] = {
            "external_ids": ids_of[key],
            "email": decided["email"], "phone": decided["phone"],
            "first_name": decided["first_name"], "last_name": decided["last_name"], "locale": decided["locale"],
            "addresses": [a for a in (decided["addresses.billing"], decided["addresses.shipping"]) if a],
            "marketing_opt_in": consent["opt_in"] if consent else None,
            "marketing_opt_in_at": consent["at"] if consent else None,
        }
    return result


def golden_of(snapshot: dict) -> dict:
    """The comparable part of `customer_snapshot(...)`."""
    return {key: snapshot[key] for key in ("external_ids", "email", "phone", "first_name", "last_name", "locale",
                                           "addresses", "marketing_opt_in", "marketing_opt_in_at")}


# The chaos scenario's rules: both strategies, ranked lists, a source left out, an unranked field.
CHAOS_RULES = {
    "email": ("source_priority", ["crm", "shop", "support"]),
    "phone": ("source_priority", ["crm", "shop", "support"]),
    "first_name": ("source_priority", ["crm", "shop"]),  # support may not set it
    "last_name": ("last_write_wins", ["support", "crm", "shop"]),
    "locale": ("last_write_wins", []),  # every source, equal rank
    "addresses.billing": ("source_priority", ["crm", "shop", "support"]),
    "addresses.shipping": ("source_priority", ["shop", "crm", "support"]),
    "marketing_opt_in": ("last_write_wins", ["support", "shop", "crm"]),
}


def model_rules(rules: dict[str, tuple[str, list[str]]]) -> dict[str, FieldRule]:
    return {name: FieldRule(strategy, tuple(sources)) for name, (strategy, sources) in rules.items()}
