"""Identity resolution: which golden record an event's identifiers belong to.

Order: external id of the same system, then email, then phone. No match
creates a customer; matches on several customers merge them into the oldest,
unless two of them hold different ids of the same system (merge protection:
an identity conflict for stewards instead).

Concurrency: on PostgreSQL the event's identifiers are locked with
transaction-scoped advisory locks (taken in sorted order, so two events never
deadlock on them) before anything is looked up, so two workers handling the
same person serialise and the second sees the first's customer. The customer
rows are then locked with SELECT ... FOR UPDATE. SQLite has one writer at a
time (BEGIN IMMEDIATE), which gives the same guarantee.
"""

import hashlib
from dataclasses import dataclass, field

from django.db import connection

from .fields import GOLDEN_FIELDS, golden_empty
from .models import Conflict, Customer, ExternalId, FieldOverride, MergeLog, SourceValue
from .patch import NormalizedPatch
from .survivorship import is_newer


@dataclass(frozen=True)
class Identifiers:
    external_ids: dict[str, str]
    email: str | None
    phone: str | None

    @classmethod
    def from_patch(cls, patch: NormalizedPatch) -> "Identifiers":
        return cls(external_ids=dict(patch.external_ids), email=patch.values.get("email"),
                   phone=patch.values.get("phone"))

    def keys(self) -> list[str]:
        keys = [f"ext:{system}:{value}" for system, value in sorted(self.external_ids.items())]
        keys += [f"email:{self.email}"] if self.email else []
        keys += [f"phone:{self.phone}"] if self.phone else []
        return keys

    def __bool__(self) -> bool:
        return bool(self.keys())


def identifier_hash(key: str) -> str:
    return hashlib.sha256(f"custsync-identifier:{key}".encode()).hexdigest()


def identifiers_lock(*, identifiers: Identifiers, wait: bool = True) -> bool:
    """Serialise work on the same identifiers across workers (PostgreSQL; no-op elsewhere).

    One statement for all of them, in sorted order (PostgreSQL evaluates the
    select list left to right). `wait=False` takes only what is free at once
    and returns False if any identifier is held by another transaction (a
    batch then defers the event instead of waiting while holding its own locks).
    """
    if connection.vendor != "postgresql":
        return True
    lock_ids = sorted({int.from_bytes(bytes.fromhex(identifier_hash(k))[:8], "big", signed=True)
                       for k in identifiers.keys()})
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"{function}(%s)" for _ in lock_ids), lock_ids)
        row = cursor.fetchone()
    return wait or all(row)


def _ids_by_customer(customer_ids: list[int]) -> dict[int, dict[str, set[str]]]:
    result: dict[int, dict[str, set[str]]] = {}
    rows = ExternalId.objects.filter(customer_id__in=customer_ids).values_list("customer_id", "system", "value")
    for customer_id, system, value in rows:
        result.setdefault(customer_id, {}).setdefault(system, set()).add(value)
    return result


def _ids_of(customer: Customer) -> dict[str, set[str]]:
    return _ids_by_customer([customer.pk]).get(customer.pk, {})


@dataclass
class Match:
    customer: Customer
    reason: str  # "external id shop", "email", "phone"
    ids: dict[str, set[str]]  # the customer's external ids by system


def matching_customers(*, identifiers: Identifiers, lock: bool = False) -> list[Match]:
    """Active customers matching the identifiers, in matching order (external ids, email, phone).

    Two queries whatever the number of identifiers and matches. `lock` takes
    the rows FOR NO KEY UPDATE, in id order, as they are read: a row merged or
    erased meanwhile by another transaction drops out of the result.
    """
    # Plain SQL: this runs for every event, and building it through the ORM cost
    # more CPU than the database spent answering it (py-spy, bench/pipeline.py).
    qn = connection.ops.quote_name
    conditions, params = [], []
    if identifiers.external_ids:
        pairs = " OR ".join(["(system = %s AND value = %s)"] * len(identifiers.external_ids))
        conditions.append(f"id IN (SELECT customer_id FROM {qn(ExternalId._meta.db_table)} WHERE {pairs})")
        for system, value in identifiers.external_ids.items():
            params += [system, value]
    for name in ("email", "phone"):
        if getattr(identifiers, name):
            conditions.append(f"{name} = %s")
            params.append(getattr(identifiers, name))
    sql = (f"SELECT * FROM {qn(Customer._meta.db_table)} WHERE deleted_at IS NULL AND merged_into_id IS NULL "
           f"AND ({' OR '.join(conditions)}) ORDER BY id")
    if lock and connection.vendor == "postgresql":
        # FOR NO KEY UPDATE: serialises writers of the customer but lets a delivery insert rows that
        # reference it (its FK check takes KEY SHARE); plain FOR UPDATE deadlocked inbox processing
        # (customer, then outbox row) against delivery recording (outbox row, then customer).
        sql += " FOR NO KEY UPDATE"
    customers = list(Customer.objects.raw(sql, params))
    ids = _ids_by_customer([c.pk for c in customers]) if customers else {}
    found: dict[int, Match] = {}
    for system, value in identifiers.external_ids.items():
        for customer in customers:
            if value in ids.get(customer.pk, {}).get(system, ()):
                found.setdefault(customer.pk, Match(customer, f"external id {system}", ids.get(customer.pk, {})))
    for name in ("email", "phone"):
        value = getattr(identifiers, name)
        for customer in customers:
            if value and getattr(customer, name) == value:
                found.setdefault(customer.pk, Match(customer, name, ids.get(customer.pk, {})))
    return list(found.values())


def _compatible(known: dict[str, set[str]], other: dict[str, set[str]]) -> bool:
    return all(known[system] == values for system, values in other.items() if system in known)


@dataclass
class Resolution:
    chosen: list[tuple[Customer, str]] = field(default_factory=list)  # oldest first after sorting
    blocked: list[Customer] = field(default_factory=list)  # matches not merged (merge protection)
    ids: dict[int, dict[str, set[str]]] = field(default_factory=dict)  # each match's external ids by system


def customers_choose(*, identifiers: Identifiers, lock: bool = False) -> Resolution:
    """Pick the matches that may be one person: greedily, in matching order, keeping the
    accumulated ids free of two different values of one system. `lock`: see `matching_customers`."""
    known = {system: {value} for system, value in identifiers.external_ids.items()}
    resolution = Resolution()
    for match in matching_customers(identifiers=identifiers, lock=lock):
        resolution.ids[match.customer.pk] = match.ids
        if _compatible(known, match.ids):
            for system, values in match.ids.items():
                known.setdefault(system, set()).update(values)
            resolution.chosen.append((match.customer, match.reason))
        else:
            resolution.blocked.append(match.customer)
    return resolution


def identity_conflict_record(*, customer: Customer, other: Customer, event_id: str, source: str, occurred_at) -> bool:
    """Record a blocked merge once per pair of customers (whatever its status); True if new."""
    pair = Conflict.objects.filter(field=Conflict.IDENTITY)
    if pair.filter(customer=customer, other_customer=other).exists() or pair.filter(customer=other, other_customer=customer).exists():
        return False
    Conflict.objects.create(
        customer=customer, other_customer=other, field=Conflict.IDENTITY, event_id=event_id,
        current_value={"customer_id": customer.pk, "external_ids": {s: sorted(v) for s, v in _ids_of(customer).items()}},
        incoming_value={"customer_id": other.pk, "external_ids": {s: sorted(v) for s, v in _ids_of(other).items()}},
        incoming_source=source, incoming_occurred_at=occurred_at,
    )
    return True


def customer_merge(*, survivor: Customer, merged: Customer, reason: str, event_id: str) -> None:
    """Move everything of `merged` onto `survivor` and leave `merged` as a tombstone.

    The caller re-decides the survivor's fields and bumps both versions.
    """
    ExternalId.objects.filter(customer=merged).update(customer=survivor)
    mine = {(sv.field, sv.source): sv for sv in SourceValue.objects.filter(customer=survivor)}
    for value in SourceValue.objects.filter(customer=merged):
        existing = mine.get((value.field, value.source))
        if existing is None:
            value.customer = survivor
            value.save(update_fields=["customer", "updated_at"])
        elif is_newer(value.as_candidate(), existing.as_candidate()):
            existing.value, existing.occurred_at, existing.event_id = value.value, value.occurred_at, value.event_id
            existing.save(update_fields=["value", "occurred_at", "event_id", "updated_at"])
            value.delete()
        else:
            value.delete()
    survivor_overrides = set(FieldOverride.objects.filter(customer=survivor).values_list("field", flat=True))
    FieldOverride.objects.filter(customer=merged, field__in=survivor_overrides).delete()
    FieldOverride.objects.filter(customer=merged).update(customer=survivor)
    Conflict.objects.filter(customer=merged).update(customer=survivor)
    Conflict.objects.filter(other_customer=merged).update(other_customer=survivor)
    Customer.objects.filter(merged_into=merged).update(merged_into=survivor)
    MergeLog.objects.create(survivor=survivor, merged=merged, reason=reason[:200], event_id=event_id)
    merged.merged_into = survivor
    wipe_personal_fields(merged)


def wipe_personal_fields(customer: Customer) -> None:
    for name in GOLDEN_FIELDS:
        setattr(customer, name, golden_empty(name))
