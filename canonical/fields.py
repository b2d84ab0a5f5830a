"""The golden record's fields, declared once; every other field list is derived from `FIELDS`.

Each `Field` says what the field is (`kind`), which field-rule units decide
it (`rule_fields`; addresses are decided per type), whether a mapper's patch
carries it (`patch`), and whether it is in the export line (`export`; the
position in `FIELDS` is the position in the line). From these come:

| derived | used by |
|---|---|
| `EXPORT_FIELDS` (the `export_customers` line, a contract) | selectors' export, the webhook target's default mapping |
| `SNAPSHOT_FIELDS` (export + `last_source`) | `customer_snapshot`, the read API serializer, target mappings |
| `PATCH_FIELDS` / `GOLDEN_FIELDS` | mapper v1, normalization, `canonical.services` (what an event may change) |
| `RULE_FIELDS`, `RULE_CHOICES`, `RULE_ALIASES` | `RuleField` (model choices), survivorship per field, the sync config |
| `TEXT_FIELDS` (stored "" when empty) | normalization, the golden record's text columns, reconciliation |
| `VOLATILE_FIELDS` | reconciliation (metadata that changes on every write is not drift) |
| `CSV`-able fields (`FLAT_PATCH_FIELDS`) | batch import's CSV columns |

Adding a field of an existing kind (text, email, phone, locale) is one
`Field(...)` line here plus its migration: declare the column on
`Customer` (`canonical/models.py`; the registry does not invent max lengths
or indexes) and let `makemigrations` write the column and the new
`RuleField` choice on the three models that use it. Nothing else changes:
normalization, survivorship, the golden columns, erasure, the snapshot,
the export, the API, the webhook target's body, reconciliation, the CSV
import and the sync config's `fields` section all follow. Place it in
`FIELDS` where it belongs in the export line: the export is a contract
(DESIGN.md), so a new exported field is a contract change, documented there.

A new *kind* also needs its code where kinds are handled: its normalizer
(`canonical.patch`), how the golden record stores it (`canonical.services`),
how the snapshot shows it (`canonical.selectors`) and its API field
(`canonical.serializers`); each of those refuses at import a kind it does
not know, never silently. A new meta field likewise needs its reader in
`canonical.selectors` and its API field in `canonical.serializers`.

Mappers: v1 takes every `PATCH_FIELDS` key under its own name, so a new
field arrives through v1 as is; v2's nested layout is fixed (adding a
version never changes an older one), so a nested form of a new field is a
new mapper `vN.py`.
"""

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    TEXT = "text"  # a name-like text: whitespace collapsed
    EMAIL = "email"
    PHONE = "phone"  # E.164
    LOCALE = "locale"  # BCP 47
    ADDRESSES = "addresses"  # a list of typed addresses, decided per type
    CONSENT = "consent"  # a flag decided together with its time (`decided_with`)
    CONSENT_AT = "consent_at"  # the time of a consent flag
    META = "meta"  # written by custsync itself (id, version, external ids, flags, timestamps)


# Single-value text kinds: one normalizer each, stored "" when empty, shown as null.
TEXT_KINDS = frozenset({Kind.TEXT, Kind.EMAIL, Kind.PHONE, Kind.LOCALE})

ADDRESS_TYPES = ("billing", "shipping")


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    rule_fields: tuple[str, ...] = ()  # the units a SourcePriorityRule decides for this field
    patch: bool = False  # a mapper's patch carries it; the golden record's value comes from the rules
    export: bool = True  # in the export line (and the webhook target's body), in declaration order
    volatile: bool = False  # changes on every write without the customer's data changing
    rule_label: str = ""  # the rule choice's label in the admin, when not the name
    decided_with: str = ""  # travels with (and is decided by the rule of) this other field
    help_text: str = ""  # read API documentation


def _data(name: str, kind: Kind, **options) -> Field:
    """A data field: in the patch, decided by its own rule unless `rule_fields` or `decided_with` say otherwise."""
    options.setdefault("rule_fields", () if options.get("decided_with") else (name,))
    return Field(name=name, kind=kind, patch=True, **options)


FIELDS: tuple[Field, ...] = (
    Field("id", Kind.META),
    Field("version", Kind.META, volatile=True, help_text="Increments on every change."),
    Field("external_ids", Kind.META, help_text='System -> id, e.g. {"shop": "9981"}'),
    _data("email", Kind.EMAIL),
    _data("phone", Kind.PHONE, help_text="E.164"),
    _data("first_name", Kind.TEXT),
    _data("last_name", Kind.TEXT),
    _data("locale", Kind.LOCALE, help_text="BCP 47"),
    _data("addresses", Kind.ADDRESSES, rule_fields=tuple(f"addresses.{t}" for t in ADDRESS_TYPES)),
    _data("marketing_opt_in", Kind.CONSENT, rule_label="marketing_opt_in (with marketing_opt_in_at)"),
    _data("marketing_opt_in_at", Kind.CONSENT_AT, decided_with="marketing_opt_in"),
    Field("deleted", Kind.META, help_text="Erased or merged away: a tombstone."),
    Field("updated_at", Kind.META, volatile=True),
    Field("last_source", Kind.META, export=False, volatile=True),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

EXPORT_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.export)
SNAPSHOT_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS)
PATCH_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.patch)
# The Customer columns an event can change: exactly what a patch carries, set from the rules' decisions.
GOLDEN_FIELDS = PATCH_FIELDS
TEXT_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.patch and f.kind in TEXT_KINDS)
# Patch fields a flat file (CSV) can hold: one scalar each.
FLAT_PATCH_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.patch and f.kind != Kind.ADDRESSES)
VOLATILE_FIELDS: frozenset[str] = frozenset(f.name for f in FIELDS if f.volatile)

RULE_FIELDS: tuple[str, ...] = tuple(unit for f in FIELDS for unit in f.rule_fields)
RULE_CHOICES: list[tuple[str, str]] = [
    (unit, f.rule_label or unit) for f in FIELDS for unit in f.rule_fields
]
# A field name that stands for several rule units (`addresses` -> both address types).
RULE_ALIASES: dict[str, list[str]] = {
    f.name: list(f.rule_fields) for f in FIELDS if f.rule_fields not in ((), (f.name,))
}
# A patch field without a rule of its own -> the field whose rule decides it.
DECIDED_WITH: dict[str, str] = {f.name: f.decided_with for f in FIELDS if f.decided_with}


def golden_empty(name: str):
    """A golden column's value when nothing is known (erasure, merge): "" for text (never NULL), [] for a list."""
    kind = BY_NAME[name].kind
    if kind in TEXT_KINDS:
        return ""
    if kind == Kind.ADDRESSES:
        return []
    return None


def _check() -> None:
    """The registry's own consistency, at import: a typo here must not reach the database."""
    problems = []
    if len(BY_NAME) != len(FIELDS):
        problems.append("field names repeat")
    if len(set(RULE_FIELDS)) != len(RULE_FIELDS):
        problems.append("rule fields repeat")
    for f in FIELDS:
        if f.kind == Kind.META and (f.patch or f.rule_fields):
            problems.append(f"{f.name}: a meta field is custsync's own (no patch, no rule)")
        if f.decided_with and not (f.decided_with in BY_NAME and BY_NAME[f.decided_with].rule_fields):
            problems.append(f"{f.name}: decided_with must name a field that has a rule")
        if f.kind == Kind.CONSENT_AT and BY_NAME.get(f.decided_with, f).kind != Kind.CONSENT:
            problems.append(f"{f.name}: a consent time is decided with its consent flag (decided_with)")
        if f.kind == Kind.CONSENT and list(DECIDED_WITH.values()).count(f.name) != 1:
            problems.append(f"{f.name}: a consent flag needs exactly one consent time (decided_with={f.name!r})")
    if problems:
        raise RuntimeError("canonical.fields: " + "; ".join(problems))


_check()
