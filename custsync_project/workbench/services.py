"""Steward and support actions that change the golden record and queue its deliveries in one transaction.

Each calls canonical's service, then targets' enqueue with what it returned
(DESIGN.md, "Apps"), so a change is never saved without its deliveries.
"""

from typing import Iterable

from django.db import transaction

from canonical.services import conflict_resolve, customer_versions_bump
from targets.services import outbox_enqueue


class AdminServiceError(Exception):
    """A request from the admin that cannot be carried out (the message is shown to the user)."""


def customer_resend(*, customer_ids: Iterable[int], user) -> dict:
    """Send customers' current state to every enabled target again, even versions already acknowledged.

    Active records are sent as upserts, tombstones (erased or merged away) as
    deletes. The golden version is bumped by one first (no data change,
    `canonical.services.customer_versions_bump`), as reconciliation fixes do: the same version would travel with the same
    Idempotency-Key, and a target that honours keys would answer from its
    cache and apply nothing. One transaction; delivery is kicked after commit.
    Returns {"customers": n, "messages": outbox rows written}.
    """
    if not user.has_perm("canonical.resend_customer"):
        raise AdminServiceError("you do not have the permission to resend customers (canonical.resend_customer)")
    with transaction.atomic():
        changes = customer_versions_bump(customer_ids=customer_ids, correlation_id=f"resend:{user.pk}")
        written = outbox_enqueue(changes=changes, resend=True)
    return {"customers": len(changes), "messages": written}


def conflict_decide(*, conflict_id: int, decision: str, user) -> int:
    """A steward's decision on one conflict and the outbox rows it causes, in one transaction.

    Returns the number of outbox rows written; raises `canonical.exceptions.CanonicalError`
    (nothing written) when the conflict cannot be decided.
    """
    with transaction.atomic():
        return outbox_enqueue(changes=conflict_resolve(conflict_id=conflict_id, decision=decision, user=user))
