"""The computed dedup key and the entity id it uses."""

import hashlib
import json
from datetime import datetime, timezone

from webhooks.envelope import Envelope, dedup_key_compute, entity_id_get, envelope_validate


def test_dedup_key_is_sha256_of_the_documented_canonical_json():
    envelope = envelope_validate({"source": "shop", "schema_version": 1, "type": "customer.upsert",
                                  "occurred_at": "2026-01-14T11:12:00+01:00", "data": {"b": 1, "shop_id": 9981, "a": "ä"}})
    canonical = '["shop","9981","2026-01-14T10:12:00Z",{"a":"ä","b":1,"shop_id":9981}]'
    assert dedup_key_compute(envelope) == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def test_entity_id_by_schema_version():
    assert entity_id_get(source="shop", schema_version=1, data={"shop_id": 9981}) == "9981"
    assert entity_id_get(source="shop", schema_version=1, data={"shop_id": "9981"}) == "9981"
    assert entity_id_get(source="crm", schema_version=2, data={"ids": {"crm": "C-17"}}) == "C-17"
    assert entity_id_get(source="crm", schema_version=2, data={"ids": [1]}) == ""
    assert entity_id_get(source="crm", schema_version=1, data={}) == ""
    assert entity_id_get(source="crm", schema_version=1, data={"crm_id": True}) == ""


def test_microseconds_are_kept_in_the_key():
    base = dict(source="shop", event_id=None, type="customer.upsert", schema_version=1, data={})
    a = Envelope(occurred_at=datetime(2026, 1, 1, tzinfo=timezone.utc), **base)
    b = Envelope(occurred_at=datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc), **base)
    assert dedup_key_compute(a) != dedup_key_compute(b)
    json.dumps(dedup_key_compute(a))
