"""The chaos suite's reference model against the product, in-process and fast (any database).

If this fails, either the model or the rules engine disagrees with DESIGN.md;
it runs before the multi-process scenario so a disagreement is found in
seconds, not after minutes of chaos.
"""

import random
from datetime import datetime

import pytest
from django.db import transaction

from canonical.events import IncomingEvent
from canonical.models import Customer, ExternalId
from canonical.selectors import customer_snapshot
from canonical.services import event_apply
from tests.harness import rules_set, workload

from .reference import CHAOS_RULES, expected_golden, golden_of, model_rules

pytestmark = pytest.mark.django_db


def _incoming(envelope: dict) -> IncomingEvent:
    return IncomingEvent(
        event_id=envelope["event_id"], source=envelope["source"], default_region="DE", type=envelope["type"],
        schema_version=envelope["schema_version"],
        occurred_at=datetime.fromisoformat(envelope["occurred_at"].replace("Z", "+00:00")), data=envelope["data"],
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rules_engine_agrees_with_the_reference_model_in_any_arrival_order(seed):
    # given the chaos rules and a small chaos-like workload, applied in shuffled order with duplicates
    rng = random.Random(seed)
    rules_set(CHAOS_RULES)
    unique, sends = workload(rng=rng, customers=15, events=300, duplicate_rate=0.2, tie_rate=0.3, null_rate=0.1)
    # when
    for envelope in sends:
        with transaction.atomic():
            event_apply(event=_incoming(envelope))
    # then the golden records are what the model predicts from the set of events
    expected = expected_golden(unique, model_rules(CHAOS_RULES))
    assert Customer.objects.count() == len(expected)
    for key, golden in expected.items():
        customer = ExternalId.objects.get(system="shop", value=key).customer
        assert golden_of(customer_snapshot(customer=customer)) == golden, key
