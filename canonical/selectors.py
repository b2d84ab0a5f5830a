"""Reads of the golden record."""

from typing import Any

from .models import Customer

EXPORT_FIELDS = (
    "id", "version", "external_ids", "email", "phone", "first_name", "last_name", "locale",
    "addresses", "marketing_opt_in", "marketing_opt_in_at", "deleted", "updated_at",
)


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def customer_snapshot(*, customer: Customer) -> dict[str, Any]:
    """The golden record as the export and the targets see it.

    Keys are DESIGN.md's export format plus `last_source`; empty text is None.
    A tombstone (erased or merged away) keeps only id, version and the flags.
    """
    deleted = customer.is_deleted
    snapshot = {
        "id": customer.pk,
        "version": customer.version,
        "external_ids": {} if deleted else {e.system: e.value for e in customer.external_ids.all()},
        "email": customer.email or None,
        "phone": customer.phone or None,
        "first_name": customer.first_name or None,
        "last_name": customer.last_name or None,
        "locale": customer.locale or None,
        "addresses": customer.addresses or [],
        "marketing_opt_in": customer.marketing_opt_in,
        "marketing_opt_in_at": _iso(customer.marketing_opt_in_at),
        "deleted": deleted,
        "updated_at": _iso(customer.updated_at),
        "last_source": customer.last_source or None,
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
    from .models import FieldOverride, SourceValue

    result: dict[str, dict[str, Any]] = {}
    for row in SourceValue.objects.filter(customer=customer, is_winner=True):
        result[row.field] = {"source": row.source, "occurred_at": _iso(row.occurred_at), "event_id": row.event_id,
                             "via": "event"}
    for override in FieldOverride.objects.filter(customer=customer, is_winner=True):
        result[override.field] = {"source": override.source, "occurred_at": _iso(override.anchor_at),
                                  "event_id": override.event_id, "via": "steward"}
    return dict(sorted(result.items()))


def customer_export_rows(*, include_deleted: bool = False, chunk_size: int = 500):
    """Export rows (DESIGN.md's keys, without `last_source`), streamed in chunks of `chunk_size`."""
    queryset = customer_list(include_deleted=include_deleted)
    for customer in queryset.iterator(chunk_size=chunk_size):
        row = customer_snapshot(customer=customer)
        row.pop("last_source")
        yield {key: row[key] for key in EXPORT_FIELDS}
