"""What a golden-record change hands to the outbox.

Every canonical service that changes golden records returns a list of
`CustomerChange` instead of reaching into the targets app; the caller that
owns the transaction passes exactly that list to
`targets.services.outbox_enqueue(changes=...)` inside the same
`transaction.atomic()` block, so no change is ever saved but not sent.
"""

from dataclasses import dataclass
from typing import Literal

Operation = Literal["upsert", "delete"]


@dataclass(frozen=True)
class CustomerChange:
    customer_id: int
    version: int  # the golden version after the change
    operation: Operation  # "delete" for erasures and for records merged away
    correlation_id: str  # the originating event id (or e.g. "steward:<user>" / "reconcile:<run>")
