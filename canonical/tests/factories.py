"""Test helpers: events and applying them the way the pipeline does (inside atomic)."""

import itertools
from datetime import datetime, timedelta, timezone

from django.db import transaction

from canonical.events import IncomingEvent
from canonical.services import event_apply

T0 = datetime(2026, 1, 14, 10, 0, tzinfo=timezone.utc)
_counter = itertools.count(1)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def make_event(data: dict, *, source: str = "shop", minutes: int = 0, version: int = 1,
               type: str = "customer.upsert", event_id: str | None = None, region: str = "DE") -> IncomingEvent:
    return IncomingEvent(
        event_id=event_id or f"evt_{next(_counter):06d}", source=source, default_region=region, type=type,
        schema_version=version, occurred_at=at(minutes), data=data,
    )


def apply(event: IncomingEvent):
    with transaction.atomic():
        return event_apply(event=event)
