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
