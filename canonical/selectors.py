"""Reads of the golden record."""

from typing import Any

from core.times import iso_z

from .fields import EXPORT_FIELDS, FIELDS, TEXT_KINDS, Kind
from .models import Customer, FieldOverride, SourceValue

# custsync's own fields (Kind.META), each read its own way; a tombstone shows no external ids.
_META = {
    "id": lambda customer, deleted: customer.pk,
    "version": lambda customer, deleted: customer.version,
    "external_ids": lambda customer, deleted: (
        {} if deleted else {e.system: e.value for e in customer.external_ids.all()}),
    "deleted": lambda customer, deleted: deleted,
    "updated_at": lambda customer, deleted: iso_z(customer.updated_at),
    "last_source": lambda customer, deleted: customer.last_source or None,
}
# How the snapshot shows each kind of golden column: empty text is null, no addresses an empty list.
_SHOWN = {
    **{kind: (lambda value: value or None) for kind in TEXT_KINDS},
    Kind.ADDRESSES: lambda value: value or [],
    Kind.CONSENT: lambda value: value,
    Kind.CONSENT_AT: iso_z,
}
_UNSHOWN = [f.name for f in FIELDS if (f.kind == Kind.META and f.name not in _META) or
            (f.kind != Kind.META and f.kind not in _SHOWN)]
if _UNSHOWN:  # a new kind or meta field in canonical.fields needs its display here
    raise RuntimeError(f"canonical.selectors cannot show field(s) {', '.join(_UNSHOWN)}")


def customer_snapshot(*, customer: Customer) -> dict[str, Any]:
    """The golden record as the export and the targets see it.

    Keys are DESIGN.md's export format plus `last_source`; empty text is None.
    A tombstone (erased or merged away) keeps only id, version and the flags.
    """
    deleted = customer.is_deleted
    snapshot = {
        f.name: _META[f.name](customer, deleted) if f.kind == Kind.META else _SHOWN[f.kind](getattr(customer, f.name))
        for f in FIELDS
    }
    return snapshot


def customer_list(*, email: str | None = None, phone: str | None = None, external_id: tuple[str, str] | None = None,
                  include_deleted: bool = False):
    """Customers filtered by already-normalized identifiers (see `canonical.normalizers`)."""
    queryset = Customer.objects.prefetch_related("external_ids").order_by("id")
    if not include_deleted:
        queryset = queryset.filter(deleted_at__isnull=True, merged_into__isnull=True)
    if email is not None:
        queryset = queryset.filter(email=email)
    if phone is not None:
        queryset = queryset.filter(phone=phone)
    if external_id is not None:
        system, value = external_id
        queryset = queryset.filter(external_ids__system=system, external_ids__value=value)
    return queryset


def customer_provenance(*, customer: Customer) -> dict[str, dict[str, Any]]:
    """Per rule field: where the golden value came from (source, occurred_at, event id, via event or steward)."""
    result: dict[str, dict[str, Any]] = {}
    for row in SourceValue.objects.filter(customer=customer, is_winner=True):
        result[row.field] = {"source": row.source, "occurred_at": iso_z(row.occurred_at), "event_id": row.event_id,
                             "via": "event"}
    for override in FieldOverride.objects.filter(customer=customer, is_winner=True):
        result[override.field] = {"source": override.source, "occurred_at": iso_z(override.anchor_at),
                                  "event_id": override.event_id, "via": "steward"}
    return dict(sorted(result.items()))


def customer_export_rows(*, include_deleted: bool = False, chunk_size: int = 500):
    """Export rows (DESIGN.md's keys, without `last_source`), streamed in chunks of `chunk_size`."""
    queryset = customer_list(include_deleted=include_deleted)
    for customer in queryset.iterator(chunk_size=chunk_size):
        row = customer_snapshot(customer=customer)
        row.pop("last_source")
        yield {key: row[key] for key in EXPORT_FIELDS}
