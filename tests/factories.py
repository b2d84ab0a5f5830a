"""Small factories for cross-app tests (sources, inbox events, targets, dead letters)."""

import itertools
from datetime import datetime, timedelta, timezone

from targets.models import DeliveryAttempt, OutboxMessage, Target
from webhooks.models import InboxEvent, Source

_seq = itertools.count(1)


def source_create(name: str = "shop", *, region: str = "DE", versions=(1, 2)) -> Source:
    source, _ = Source.objects.get_or_create(
        name=name,
        defaults={"secret_refs": ["${WEBHOOK_SECRET}"], "schema_versions": list(versions), "default_region": region},
    )
    return source


def inbox_event_create(*, source: Source, data: dict, event_id: str | None = None, type: str = "customer.upsert",
                       schema_version: int = 1, occurred_at: str = "2026-01-14T10:12:00Z") -> InboxEvent:
    event_id = event_id or f"evt_{next(_seq)}"
    envelope = {"event_id": event_id, "source": source.name, "schema_version": schema_version, "type": type,
                "occurred_at": occurred_at, "data": data}
    return InboxEvent.objects.create(
        source=source, event_id=event_id, type=type, schema_version=schema_version,
        occurred_at=datetime.fromisoformat(occurred_at.replace("Z", "+00:00")).astimezone(timezone.utc),
        payload=envelope,
    )


def target_create(name: str = "cdp", *, kind: str = "cdp", base_url: str = "http://127.0.0.1:9/cdp", **fields) -> Target:
    return Target.objects.create(name=name, kind=kind, base_url=base_url, **fields)


def dead_letter_create(*, target: Target, customer) -> OutboxMessage:
    """A message the target refused with 422 after six attempts, with its last attempt five minutes ago."""
    now = datetime.now(timezone.utc)
    dead = OutboxMessage.objects.create(target=target, customer=customer, version=customer.version,
                                        status=OutboxMessage.Status.DEAD, attempts=6, last_status=422,
                                        last_error="unprocessable", next_attempt_at=now)
    DeliveryAttempt.objects.create(message=dead, started_at=now - timedelta(minutes=5), operation="upsert",
                                   version=customer.version, status_code=422, outcome="dead", idempotency_key="k1")
    return dead
