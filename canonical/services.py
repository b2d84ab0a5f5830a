"""Writes to the golden record: applying events, erasures, steward decisions.

Every service here runs inside the caller's `transaction.atomic()` and
returns the `CustomerChange`s it caused; the caller hands exactly those to the
outbox in the same transaction (DESIGN.md "Apps"), so a change is never saved
without being sent, and a crash anywhere leaves nothing half-written.
"""

from dataclasses import dataclass, field
from typing import Any, Iterable

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.bulk import rows_update

from .changes import CustomerChange
from .events import DELETE, EVENT_TYPES, IncomingEvent
from .exceptions import CanonicalError, MappingError  # noqa: F401  (MappingError is part of the API)
from .fields import BY_NAME, DECIDED_WITH, FIELDS, GOLDEN_FIELDS, RULE_FIELDS, TEXT_FIELDS, TEXT_KINDS, Kind
from .identity import (
    Identifiers, customer_merge, customers_choose, identifier_hash, identifiers_lock,
    identity_conflict_record, wipe_personal_fields,
)
from .mappers import map_data
from .models import Conflict, Customer, ErasedIdentifier, ExternalId, FieldOverride, SourcePriorityRule, SourceValue
from .patch import NormalizedPatch, patch_normalize
from .problems import problem
from .survivorship import Candidate, Decision, Rule, decide, is_newer, loses_on_rank, override_holds

__all__ = [
    "ApplyResult", "CanonicalError", "IdentifiersBusy", "MappingError", "PreparedEvent", "conflict_resolve",
    "event_apply", "event_prepare", "prepared_event_apply", "rules_load",
]

DEFAULT_RULE = Rule()  # a field without a rule: every source may, equal rank
RESOLVE_DECISIONS = ("accept_incoming", "keep_current")


@dataclass
class ApplyResult:
    customer_id: int | None
    changes: list[CustomerChange] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)


def _require_atomic(name: str) -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"{name} must run inside the caller's transaction.atomic()")


def _validate(event: IncomingEvent) -> None:
    if not isinstance(event.event_id, str) or not event.event_id or len(event.event_id) > 255:
        raise CanonicalError("event_id must be a non-empty string of at most 255 characters")
    if not isinstance(event.source, str) or not event.source:
        raise CanonicalError("source must be a non-empty string")
    if event.type not in EVENT_TYPES:
        raise CanonicalError(f"unknown event type {event.type!r}; expected one of {', '.join(EVENT_TYPES)}")
    if getattr(event.occurred_at, "tzinfo", None) is None:
        raise CanonicalError("occurred_at must be a timezone-aware datetime")


@dataclass(frozen=True)
class PreparedEvent:
    """An event validated, mapped and normalized: everything before the first database access."""

    event: IncomingEvent
    patch: Any  # NormalizedPatch
    identifiers: Identifiers


class IdentifiersBusy(Exception):
    """`lock_wait=False` and another transaction holds one of the event's identifiers; nothing was written."""


def event_prepare(*, event: IncomingEvent) -> PreparedEvent:
    """Validate, map and normalize (no database); raises `CanonicalError` for an event that can never apply."""
    _validate(event)
    patch = patch_normalize(raw=map_data(schema_version=event.schema_version, data=event.data),
                            default_region=event.default_region)
    identifiers = Identifiers.from_patch(patch)
    if not identifiers:
        raise CanonicalError("the event carries no usable identifier (external id, email or phone)")
    return PreparedEvent(event=event, patch=patch, identifiers=identifiers)


def event_apply(*, event: IncomingEvent) -> ApplyResult:
    """Apply one inbox event to the golden records; see DESIGN.md "Canonical model and rules".

    Raises `CanonicalError` when the event as a whole cannot be applied; per-field
    problems are returned, not raised. Applying the same event again changes nothing.
    """
    _require_atomic("event_apply")
    return prepared_event_apply(prepared=event_prepare(event=event))


def prepared_event_apply(*, prepared: PreparedEvent, rules: dict[str, Rule] | None = None,
                   lock_wait: bool = True) -> ApplyResult:
    """Apply a prepared event. `rules` (from `rules_load`) lets a batch read them once.

    With `lock_wait=False` raises `IdentifiersBusy`, before writing anything,
    when another transaction works on one of the event's identifiers.
    """
    _require_atomic("prepared_event_apply")
    event, patch, identifiers = prepared.event, prepared.patch, prepared.identifiers
    patch = NormalizedPatch(external_ids=patch.external_ids, values=patch.values, problems=list(patch.problems))
    if not identifiers_lock(identifiers=identifiers, wait=lock_wait):
        raise IdentifiersBusy(event.event_id)
    if event.type == DELETE:
        return _erase(event=event, identifiers=identifiers, problems=patch.problems)

    erased = ErasedIdentifier.objects.filter(
        key_hash__in=[identifier_hash(k) for k in identifiers.keys()], erased_occurred_at__gte=event.occurred_at,
    )
    if erased.exists():
        patch.problems.append(problem("event", event.event_id,
                                      "occurred before an erasure of this customer; ignored", "warning"))
        return ApplyResult(customer_id=None, problems=patch.problems)

    survivor, merged_away, reasons, resolution = _resolve_and_lock(identifiers=identifiers)
    blocked = resolution.blocked
    result = ApplyResult(customer_id=None, problems=patch.problems)
    created = survivor is None
    if created:
        survivor = Customer.objects.create()
    before = None if created else _golden_fields(survivor)

    for other in merged_away:
        customer_merge(survivor=survivor, merged=other, reason=f"matched by {reasons[other.pk]}", event_id=event.event_id)
        result.changes.append(_bump(other, operation="delete", source=event.source, correlation_id=event.event_id))
    for other in blocked:
        identity_conflict_record(customer=survivor, other=other, event_id=event.event_id,
                                 source=event.source, occurred_at=event.occurred_at)
        result.problems.append(problem("identity", f"customer {other.pk}",
                                       f"would merge customer {survivor.pk} with customer {other.pk}, but they hold "
                                       "different ids of the same system; not merged, identity conflict recorded",
                                       "warning"))
    held = {} if created or merged_away else resolution.ids.get(survivor.pk, {})
    attached = False
    if any(value not in held.get(system, ()) for system, value in identifiers.external_ids.items()):
        attached = _external_ids_attach(customer=survivor, identifiers=identifiers, problems=result.problems)

    rules = rules_load() if rules is None else rules
    rows = _source_values_by_field(customer=survivor)
    touched = _source_values_record(customer=survivor, event=event, values=patch.values, rows=rows)
    for name in patch.values:
        if not rules.get(name, DEFAULT_RULE).allows(event.source):
            result.problems.append(problem(name, event.source, f"source {event.source!r} may not set {name} "
                                           "(field rule); recorded as rejected", "warning"))
    has_overrides, has_open = (False, False) if created else _steward_state(survivor)
    decisions = _fields_decide(customer=survivor, rules=rules, rows=rows, has_overrides=has_overrides)
    _conflicts_update(customer=survivor, rules=rules, decisions=decisions, touched=touched, event=event, rows=rows,
                      has_open=has_open)

    # The external ids are part of the golden record: a merge or a new id changes it too.
    if created or merged_away or attached or _golden_fields(survivor) != before:
        result.changes.insert(0, _bump(survivor, operation="upsert", source=event.source, correlation_id=event.event_id))
    result.customer_id = survivor.pk
    return result


def _resolve_and_lock(*, identifiers: Identifiers):
    """(survivor or None, customers to merge into it, match reasons, the resolution), rows locked."""
    resolution = customers_choose(identifiers=identifiers, lock=True)
    chosen = sorted((c for c, _ in resolution.chosen), key=lambda c: c.pk)
    reasons = {c.pk: reason for c, reason in resolution.chosen}
    return (chosen[0] if chosen else None), chosen[1:], reasons, resolution


def _golden_fields(customer: Customer) -> tuple:
    """The golden record's own fields, to tell whether a write changed it (external ids are tracked
    by the callers: only identity resolution changes them)."""
    return tuple(getattr(customer, name) for name in GOLDEN_FIELDS)


def _bump(customer: Customer, *, operation: str, source: str, correlation_id: str) -> CustomerChange:
    customer.version += 1
    customer.last_source = source[:64]
    customer.save()
    return CustomerChange(customer_id=customer.pk, version=customer.version, operation=operation,
                          correlation_id=correlation_id)


def rules_load() -> dict[str, Rule]:
    """The field rules as survivorship sees them; a batch reads them once and passes them on."""
    return {rule.field: rule.as_rule() for rule in SourcePriorityRule.objects.all()}



def _external_ids_attach(*, customer: Customer, identifiers: Identifiers, problems: list[dict]) -> bool:
    """Attach the event's external ids the customer does not hold yet; True if any was attached."""
    if not identifiers.external_ids:
        return False
    pairs = Q()
    for system, value in identifiers.external_ids.items():
        pairs |= Q(system=system, value=value) | Q(customer=customer, system=system)
    # One read for every id of the event: who owns each (system, value), and which systems the customer has.
    known = list(ExternalId.objects.filter(pairs).values_list("customer_id", "system", "value"))
    attached = False
    for system, value in identifiers.external_ids.items():
        owner = next((c for c, s, v in known if (s, v) == (system, value)), None)
        if owner == customer.pk:
            continue
        if owner is not None:
            problems.append(problem(f"external_ids.{system}", value,
                                    f"belongs to customer {owner} (identity conflict); not attached", "warning"))
        elif any(c == customer.pk and s == system for c, s, _ in known):
            problems.append(problem(f"external_ids.{system}", value,
                                    f"customer {customer.pk} already has another {system} id; not attached", "warning"))
        else:
            ExternalId.objects.create(customer=customer, system=system, value=value)
            known.append((customer.pk, system, value))
            attached = True
    return attached


def _source_values_by_field(*, customer: Customer) -> dict[str, list[SourceValue]]:
    """Every source value of the customer, read once per event and kept current by the steps below."""
    rows: dict[str, list[SourceValue]] = {}
    for row in SourceValue.objects.filter(customer=customer):
        rows.setdefault(row.field, []).append(row)
    return rows


def _steward_state(customer: Customer) -> tuple[bool, bool]:
    """(has field overrides, has open conflicts) in one round trip; most customers have neither."""
    connection = transaction.get_connection()
    qn = connection.ops.quote_name
    sql = (f"SELECT EXISTS (SELECT 1 FROM {qn(FieldOverride._meta.db_table)} WHERE customer_id = %s), "
           f"EXISTS (SELECT 1 FROM {qn(Conflict._meta.db_table)} WHERE customer_id = %s AND status = %s)")
    with connection.cursor() as cursor:
        cursor.execute(sql, [customer.pk, customer.pk, Conflict.Status.OPEN])
        has_overrides, has_open = cursor.fetchone()
    return bool(has_overrides), bool(has_open)


def _source_values_record(*, customer: Customer, event: IncomingEvent, values: dict,
                           rows: dict[str, list[SourceValue]]) -> dict[str, Candidate]:
    """Keep each source's latest value per field (in `rows` too); returns the fields this event changed."""
    now = timezone.now()
    touched, created, updated = {}, [], []
    for name, value in values.items():
        incoming = Candidate(source=event.source, value=value, occurred_at=event.occurred_at, event_id=event.event_id)
        row = next((r for r in rows.get(name, []) if r.source == event.source), None)
        if row is not None and not is_newer(incoming, row.as_candidate()):
            continue  # an older (or the same) event: the stored value stays
        if row is None:
            row = SourceValue(customer=customer, field=name, source=event.source)
            rows.setdefault(name, []).append(row)
            created.append(row)
        else:
            updated.append(row)
        row.value, row.occurred_at, row.event_id, row.updated_at = value, event.occurred_at, event.event_id, now
        touched[name] = incoming
    if created:
        SourceValue.objects.bulk_create(created)
    if updated:
        rows_update(updated, ["value", "occurred_at", "event_id", "updated_at"])
    return touched


def _fields_decide(*, customer: Customer, rules: dict[str, Rule],
                   rows: dict[str, list[SourceValue]] | None = None, has_overrides: bool = True) -> dict[str, Decision]:
    """Re-decide every field of the customer from its source values and overrides; set the golden fields."""
    if rows is None:
        rows = _source_values_by_field(customer=customer)
    overrides = {o.field: o for o in FieldOverride.objects.filter(customer=customer)} if has_overrides else {}
    now = timezone.now()
    changed: list[SourceValue] = []
    decisions = {}
    for name in RULE_FIELDS:
        rule = rules.get(name, DEFAULT_RULE)
        candidates = [row.as_candidate() for row in rows.get(name, [])]
        override = overrides.get(name)
        if override is not None and not override_holds(rule, override.as_override(), candidates):
            override.delete()  # a source ranked at least as well changed the field again
            override = None
        decision = decide(rule, candidates, override.as_override() if override else None)
        for row in rows.get(name, []):
            winner = not decision.override_active and decision.winner is not None and row.source == decision.winner.source
            if (row.is_winner, row.rejected) != (winner, not rule.allows(row.source)):
                row.is_winner, row.rejected, row.updated_at = winner, not rule.allows(row.source), now
                changed.append(row)
        if override is not None and not override.is_winner:
            override.is_winner = True
            override.save(update_fields=["is_winner", "updated_at"])
        decisions[name] = decision
    if changed:
        rows_update(changed, ["is_winner", "rejected", "updated_at"])
    _golden_set(customer, decisions)
    return decisions


def _golden_set(customer: Customer, decisions: dict[str, Decision]) -> None:
    """The golden columns from the decided rule fields, per kind (`canonical.fields`)."""
    for name in TEXT_FIELDS:
        setattr(customer, name, decisions[name].value or "")
    for f in FIELDS:
        if f.kind == Kind.ADDRESSES:
            setattr(customer, f.name, [a for a in (decisions[unit].value for unit in f.rule_fields) if a])
    for at, flag in DECIDED_WITH.items():  # a consent flag and its time: one decided value {"opt_in", "at"}
        consent = decisions[flag].value
        setattr(customer, flag, consent["opt_in"] if consent else None)
        setattr(customer, at, parse_datetime(consent["at"]) if consent and consent.get("at") else None)


_UNHANDLED = ({BY_NAME[name].kind for name in GOLDEN_FIELDS}
              - {*TEXT_KINDS, Kind.ADDRESSES, Kind.CONSENT, Kind.CONSENT_AT})
if _UNHANDLED:  # a new kind in canonical.fields needs its golden column set in _golden_set
    raise RuntimeError(f"canonical.services cannot set golden fields of kind {', '.join(sorted(_UNHANDLED))}")


def _conflicts_update(*, customer, rules, decisions, touched: dict[str, Candidate], event: IncomingEvent,
                      rows: dict[str, list[SourceValue]], has_open: bool = True) -> None:
    """Open a conflict for a changed value that loses on rank; supersede those that no longer apply."""
    if not touched:
        return
    # One query for all touched fields: the loop only changes conflicts of the
    # field it is on, and no source value (`rows` holds their current values).
    latest_by_field = {name: {sv.source: sv.value for sv in rows.get(name, [])} for name in touched}
    open_by_field: dict[str, list[Conflict]] = {}
    open_conflicts = Conflict.objects.filter(customer=customer, field__in=list(touched), status=Conflict.Status.OPEN)
    for conflict in open_conflicts if has_open else ():
        open_by_field.setdefault(conflict.field, []).append(conflict)
    for name, incoming in touched.items():
        rule, winner = rules.get(name, DEFAULT_RULE), decisions[name].winner
        latest = latest_by_field.get(name, {})
        for conflict in open_by_field.get(name, []):
            stale = latest.get(conflict.incoming_source, object()) != conflict.incoming_value
            if stale or (winner is not None and winner.value == conflict.incoming_value):
                conflict.status = Conflict.Status.SUPERSEDED
                conflict.save(update_fields=["status", "updated_at"])
        if not loses_on_rank(rule, incoming=incoming, winner=winner):
            continue
        Conflict.objects.create(
            customer=customer, field=name, event_id=event.event_id,
            current_value=winner.value, current_source=winner.source,
            current_occurred_at=winner.occurred_at if winner.event_id else None,
            incoming_value=incoming.value, incoming_source=incoming.source, incoming_occurred_at=incoming.occurred_at,
        )


def _erase(*, event: IncomingEvent, identifiers: Identifiers, problems: list[dict]) -> ApplyResult:
    """customer.delete: wipe, drop ids/values/provenance, keep a tombstone and the hashed identifiers."""
    resolution = customers_choose(identifiers=identifiers)
    ids = sorted(c.pk for c, _ in resolution.chosen)
    customers = list(Customer.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk"))
    for other in resolution.blocked:
        problems.append(problem("identity", f"customer {other.pk}", "matched by email or phone but holds a different "
                                "id of the same system; not erased", "warning"))
    keys = set(identifiers.keys())
    for customer in customers:
        keys.update(f"ext:{s}:{v}" for s, v in customer.external_ids.values_list("system", "value"))
        keys.update(f"{name}:{value}" for name, value in ((n, getattr(customer, n)) for n in ("email", "phone")) if value)
        for name, value in SourceValue.objects.filter(customer=customer, field__in=["email", "phone"]).values_list("field", "value"):
            if value:
                keys.add(f"{name}:{value}")
    for key in sorted(keys):
        row, created = ErasedIdentifier.objects.get_or_create(
            key_hash=identifier_hash(key),
            defaults={"erased_occurred_at": event.occurred_at, "event_id": event.event_id,
                      "customer": customers[0] if customers else None},
        )
        if not created and row.erased_occurred_at < event.occurred_at:
            row.erased_occurred_at, row.event_id = event.occurred_at, event.event_id
            row.save(update_fields=["erased_occurred_at", "event_id", "updated_at"])

    result = ApplyResult(customer_id=customers[0].pk if customers else None, problems=problems)
    if not customers:
        problems.append(problem("event", event.event_id, "no customer matched; the erasure is remembered", "warning"))
    for customer in customers:
        customer.external_ids.all().delete()
        SourceValue.objects.filter(customer=customer).delete()
        FieldOverride.objects.filter(customer=customer).delete()
        Conflict.objects.filter(customer=customer).delete()
        Conflict.objects.filter(other_customer=customer).delete()
        wipe_personal_fields(customer)
        customer.deleted_at = timezone.now()
        result.changes.append(_bump(customer, operation="delete", source=event.source, correlation_id=event.event_id))
    return result


def conflict_resolve(*, conflict_id: int, decision: str, user) -> list[CustomerChange]:
    """A steward's decision on an open conflict; returns the golden change (if any) for the outbox.

    `accept_incoming` makes the incoming value win until a source ranked at least
    as well as the incoming one changes the field again; `keep_current` closes
    the conflict. Identity conflicts can only be kept (the records stay apart).
    """
    _require_atomic("conflict_resolve")
    if decision not in RESOLVE_DECISIONS:
        raise CanonicalError(f"unknown decision {decision!r}; expected one of {', '.join(RESOLVE_DECISIONS)}")
    if not user.has_perm("canonical.resolve_conflict"):
        raise CanonicalError("you do not have the permission to resolve conflicts (canonical.resolve_conflict)")
    conflict = Conflict.objects.select_for_update().filter(pk=conflict_id).first()
    if conflict is None:
        raise CanonicalError(f"conflict {conflict_id} does not exist")
    if conflict.status != Conflict.Status.OPEN:
        raise CanonicalError(f"conflict {conflict_id} is already {conflict.get_status_display()}")
    customer = Customer.objects.select_for_update(no_key=True).get(pk=conflict.customer_id)
    if customer.is_deleted:
        raise CanonicalError(f"customer {customer.pk} was erased or merged; the conflict no longer applies")

    changes = []
    if decision == "accept_incoming":
        if conflict.field == Conflict.IDENTITY:
            raise CanonicalError("identity conflicts cannot be accepted automatically: the records hold different "
                                 "ids of the same system; keep them apart or correct the source systems")
        rules = rules_load()
        rule = rules.get(conflict.field, DEFAULT_RULE)
        limit = rule.rank(conflict.incoming_source)
        ranked_as_well = [
            sv.occurred_at for sv in SourceValue.objects.filter(customer=customer, field=conflict.field)
            if rule.rank(sv.source) is not None and (limit is None or rule.rank(sv.source) <= limit)
        ]
        anchor = max([conflict.incoming_occurred_at, *ranked_as_well])
        before = _golden_fields(customer)  # a steward decision never changes the external ids
        FieldOverride.objects.update_or_create(
            customer=customer, field=conflict.field,
            defaults={"value": conflict.incoming_value, "source": conflict.incoming_source, "anchor_at": anchor,
                      "event_id": conflict.event_id, "conflict": conflict, "decided_by": user, "is_winner": False},
        )
        _fields_decide(customer=customer, rules=rules)
        if _golden_fields(customer) != before:
            changes.append(_bump(customer, operation="upsert", source=conflict.incoming_source,
                                 correlation_id=f"steward:{user.pk}:conflict:{conflict.pk}"))
    conflict.status = (Conflict.Status.ACCEPTED_INCOMING if decision == "accept_incoming"
                       else Conflict.Status.KEPT_CURRENT)
    conflict.resolved_by, conflict.resolved_at = user, timezone.now()
    conflict.save(update_fields=["status", "resolved_by", "resolved_at", "updated_at"])
    return changes


def customer_versions_bump(*, customer_ids: Iterable[int], correlation_id: str) -> list[CustomerChange]:
    """A new golden version without a data change, for a forced resend (admin "resend", reconciliation fix).

    The same version travels with the same Idempotency-Key, and a target that
    honours keys answers from its cache and applies nothing; a new version makes
    the resend a new request. Customers are locked in id order like every other
    write here. Call inside the caller's transaction; returns the changes to enqueue.
    """
    _require_atomic("customer_versions_bump")
    changes = []
    for customer in Customer.objects.select_for_update(no_key=True).filter(pk__in=list(customer_ids)).order_by("pk"):
        Customer.objects.filter(pk=customer.pk).update(version=F("version") + 1)
        changes.append(CustomerChange(
            customer_id=customer.pk, version=customer.version + 1,
            operation="delete" if customer.is_deleted else "upsert", correlation_id=correlation_id,
        ))
    return changes
