"""What the pipeline hands to canonical: one inbox event, already verified and stored."""

from dataclasses import dataclass
from datetime import datetime

UPSERT = "customer.upsert"
DELETE = "customer.delete"
EVENT_TYPES = (UPSERT, DELETE)


@dataclass(frozen=True)
class IncomingEvent:
    event_id: str  # the inbox dedup key; also the correlation id of the changes it causes
    source: str  # source name, e.g. "shop"
    default_region: str  # the source's phone region, e.g. "DE"
    type: str  # "customer.upsert" | "customer.delete"
    schema_version: int
    occurred_at: datetime  # aware
    data: dict
