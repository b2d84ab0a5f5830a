"""Reads for the steward and support pages of the admin (customer page, conflict page).

Each function does a fixed number of queries, whatever the customer's history.
"""

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Max, Q

from canonical.fields import RULE_FIELDS
from canonical.models import Conflict, Customer, FieldOverride, MergeLog, SourceValue
from targets.models import DeliveredState, OutboxMessage, Target
from webhooks.models import InboxEvent


@dataclass
class CustomerPage:
    source_values: list[SourceValue]
    overrides: dict[str, FieldOverride]
    conflicts: list[Conflict]
    merges: list[MergeLog]
    event_pks: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, event id) -> inbox pk
    outbox: list[dict[str, Any]] = field(default_factory=list)
    outbox_visible: bool = False

    def winner(self, name: str):
        override = self.overrides.get(name)
        if override is not None and override.is_winner:
            return override
        return next((sv for sv in self.source_values if sv.field == name and sv.is_winner), None)


def inbox_event_pks(pairs: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """(source name, event id) -> InboxEvent pk, one query."""
    event_ids = {event_id for _, event_id in pairs if event_id}
    if not event_ids:
        return {}
    rows = InboxEvent.objects.filter(event_id__in=event_ids).values_list("source__name", "event_id", "pk")
    return {(source, event_id): pk for source, event_id, pk in rows if (source, event_id) in pairs}


def customer_outbox_state(*, customer_id: int) -> list[dict[str, Any]]:
    """Per target: the latest outbox message and the last acknowledged (delivered) state."""
    latest_ids = (OutboxMessage.objects.filter(customer_id=customer_id).values("target_id")
                  .annotate(last=Max("id")).values_list("last", flat=True))
    latest = {m.target_id: m for m in OutboxMessage.objects.filter(pk__in=list(latest_ids))}
    delivered = {d.target_id: d for d in DeliveredState.objects.filter(customer_id=customer_id)}
    rows = []
    for target in Target.objects.all():
        rows.append({"target": target, "message": latest.get(target.pk), "delivered": delivered.get(target.pk)})
    return rows


def customer_page(*, customer: Customer, with_events: bool = True, with_outbox: bool = True) -> CustomerPage:
    source_values = list(SourceValue.objects.filter(customer=customer).order_by("field", "-is_winner", "source"))
    overrides = {o.field: o for o in FieldOverride.objects.filter(customer=customer).select_related("decided_by")}
    conflicts = list(Conflict.objects.filter(Q(customer=customer) | Q(other_customer=customer))
                     .select_related("resolved_by").order_by("-created_at"))
    merges = list(MergeLog.objects.filter(Q(survivor=customer) | Q(merged=customer)).order_by("-created_at"))
    page = CustomerPage(source_values=source_values, overrides=overrides, conflicts=conflicts, merges=merges)
    if with_events:
        pairs = {(sv.source, sv.event_id) for sv in source_values}
        pairs |= {(o.source, o.event_id) for o in overrides.values()}
        pairs |= {(c.incoming_source, c.event_id) for c in conflicts}
        page.event_pks = inbox_event_pks(pairs)
    if with_outbox:
        page.outbox = customer_outbox_state(customer_id=customer.pk)
        page.outbox_visible = True
    return page


RULE_FIELD_NAMES = list(RULE_FIELDS)


def golden_value(customer: Customer, name: str):
    if name.startswith("addresses."):
        kind = name.split(".", 1)[1]
        return next((a for a in customer.addresses or [] if isinstance(a, dict) and a.get("type") == kind), None)
    if name == "marketing_opt_in":
        if customer.marketing_opt_in is None:
            return None
        return {"opt_in": customer.marketing_opt_in, "at": customer.marketing_opt_in_at}
    return getattr(customer, name) or None
