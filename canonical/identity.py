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


def identifiers_lock(*, identifiers: Identifiers) -> None:
    """Serialise work on the same identifiers across workers (PostgreSQL; no-op elsewhere)."""
    if connection.vendor != "postgresql":
        return
    lock_ids = sorted({int.from_bytes(bytes.fromhex(identifier_hash(k))[:8], "big", signed=True)
                       for k in identifiers.keys()})
    with connection.cursor() as cursor:
        for lock_id in lock_ids:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])


def _active(queryset):
    return queryset.filter(deleted_at__isnull=True, merged_into__isnull=True)


def matching_customers(*, identifiers: Identifiers) -> list[tuple[Customer, str]]:
    """Active customers matching the identifiers, in matching order, each with the reason."""
    found: dict[int, tuple[Customer, str]] = {}
    for system, value in identifiers.external_ids.items():
        for ext in ExternalId.objects.filter(system=system, value=value).select_related("customer"):
            if not ext.customer.is_deleted:
                found.setdefault(ext.customer_id, (ext.customer, f"external id {system}"))
    for name in ("email", "phone"):
        value = getattr(identifiers, name)
        if value:
            for customer in _active(Customer.objects.filter(**{name: value})).order_by("id"):
                found.setdefault(customer.pk, (customer, name))
    return list(found.values())


def _ids_of(customer: Customer) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for system, value in customer.external_ids.values_list("system", "value"):
        result.setdefault(system, set()).add(value)
    return result


def _compatible(known: dict[str, set[str]], other: dict[str, set[str]]) -> bool:
    return all(known[system] == values for system, values in other.items() if system in known)


@dataclass
class Resolution:
    chosen: list[tuple[Customer, str]] = field(default_factory=list)  # oldest first after sorting
    blocked: list[Customer] = field(default_factory=list)  # matches not merged (merge protection)


def customers_choose(*, identifiers: Identifiers) -> Resolution:
    """Pick the matches that may be one person: greedily, in matching order, keeping the
    accumulated ids free of two different values of one system."""
    known = {system: {value} for system, value in identifiers.external_ids.items()}
    resolution = Resolution()
    for customer, reason in matching_customers(identifiers=identifiers):
        ids = _ids_of(customer)
        if _compatible(known, ids):
            for system, values in ids.items():
                known.setdefault(system, set()).update(values)
            resolution.chosen.append((customer, reason))
        else:
            resolution.blocked.append(customer)
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
    customer.email = customer.phone = customer.first_name = customer.last_name = customer.locale = ""
    customer.addresses = []
    customer.marketing_opt_in = None
    customer.marketing_opt_in_at = None
