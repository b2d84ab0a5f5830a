"""Steward and support actions that change the golden record and queue its deliveries in one transaction.

Each calls canonical's service, then targets' enqueue with what it returned
(DESIGN.md, "Apps"), so a change is never saved without its deliveries.

The admin checks the permissions before it calls these (the action's declared
permission, or the button view's `has_<x>_permission`): that is the workbench's
one permission layer. Canonical's `conflict_resolve` keeps its own check.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction

from canonical.exceptions import CanonicalError
from canonical.services import conflict_resolve, customer_versions_bump
from targets.services import outbox_enqueue


def customer_resend(*, customer_ids: Iterable[int], user) -> dict:
    """Send customers' current state to every enabled target again, even versions already acknowledged.

    Active records are sent as upserts, tombstones (erased or merged away) as
    deletes. The golden version is bumped by one first (no data change,
    `canonical.services.customer_versions_bump`), as reconciliation fixes do: the same version would travel with the same
    Idempotency-Key, and a target that honours keys would answer from its
    cache and apply nothing. One transaction; delivery is kicked after commit.
    `user` is named in the correlation id. Returns {"customers": n, "messages": outbox rows written}.
    """
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


@dataclass
class ConflictsDecided:
    decided: list[int] = field(default_factory=list)  # conflict ids, in the order given
    failed: dict[int, str] = field(default_factory=dict)  # conflict id -> why it could not be decided
    messages: int = 0  # outbox rows written


def conflicts_decide(*, conflict_ids: Iterable[int], decision: str, user) -> ConflictsDecided:
    """The same decision on several conflicts: what was decided, what failed and why.

    Each conflict is decided in its own transaction (`conflict_decide`): one
    that cannot be decided (already closed, an identity conflict accepted, a
    customer erased meanwhile) rolls back alone and leaves the others decided,
    as a steward working through a list expects. Only `CanonicalError` (a
    refusal) is collected; anything else propagates, the conflicts decided
    before it stay decided.
    """
    result = ConflictsDecided()
    for conflict_id in conflict_ids:
        try:
            result.messages += conflict_decide(conflict_id=conflict_id, decision=decision, user=user)
        except CanonicalError as error:
            result.failed[conflict_id] = str(error)
        else:
            result.decided.append(conflict_id)
    return result
