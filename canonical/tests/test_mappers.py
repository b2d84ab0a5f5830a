"""Mapper contract: every schema version maps the same person to the same canonical patch."""

import pytest

from canonical.exceptions import MappingError
from canonical.mappers import map_data, supported_versions
from canonical.models import Customer
from canonical.patch import patch_normalize
from canonical.selectors import customer_snapshot

from .factories import apply, make_event

ADDRESS = {"type": "billing", "line1": "Hauptstr. 1", "line2": None, "postal_code": "10115",
           "city": "Berlin", "country": "DEU"}
V1 = {"shop_id": 9981, "crm_id": "C-17", "email": "Person@Example.com ", "phone": "0151 23456789",
      "first_name": "Max", "last_name": "Mustermann", "locale": "de_DE", "addresses": [ADDRESS],
      "marketing_opt_in": True, "marketing_opt_in_at": "2026-01-10T08:00:00Z"}
V2 = {"ids": {"shop": "9981", "crm": "C-17"}, "contact": {"email": "person@example.com", "phone": "+49 151 23456789"},
      "name": {"given": "Max", "family": "Mustermann"}, "locale": "de-DE",
      "consent": {"marketing": {"opt_in": True, "at": "2026-01-10T09:00:00+01:00"}}, "addresses": [ADDRESS]}


def normalized(version, data):
    return patch_normalize(raw=map_data(schema_version=version, data=data), default_region="DE")


def test_registry_knows_v1_and_v2():
    assert supported_versions()[:2] == [1, 2]
    with pytest.raises(MappingError, match="unknown schema_version 99"):
        map_data(schema_version=99, data={})
    with pytest.raises(MappingError, match="data must be an object"):
        map_data(schema_version=1, data="x")


def test_v1_and_v2_give_the_same_patch():
    one, two = normalized(1, V1), normalized(2, V2)
    assert one.external_ids == two.external_ids == {"shop": "9981", "crm": "C-17"}
    assert one.values == two.values
    assert one.problems == two.problems == []


@pytest.mark.django_db
@pytest.mark.parametrize("source", ["crm", "shop"])
def test_v1_and_v2_give_the_same_golden_record(source):
    first = apply(make_event(V1, version=1, source=source, event_id="evt_a"))
    golden_v1 = customer_snapshot(customer=Customer.objects.get(pk=first.customer_id))
    Customer.objects.all().delete()
    second = apply(make_event(V2, version=2, source=source, event_id="evt_a"))
    golden_v2 = customer_snapshot(customer=Customer.objects.get(pk=second.customer_id))
    for golden in (golden_v1, golden_v2):
        golden.pop("id"), golden.pop("updated_at")
    assert golden_v1 == golden_v2
    assert golden_v1["addresses"][0]["country"] == "DE"


def test_v2_null_objects_clear_their_fields():
    patch = normalized(2, {"ids": {"shop": 1}, "contact": None, "name": {"family": None}, "consent": None})
    assert patch.values == {"email": None, "phone": None, "last_name": None, "marketing_opt_in": None}


def test_absent_fields_stay_absent():
    assert normalized(1, {"shop_id": 1}).values == {}
    assert normalized(2, {"ids": {"shop": 1}, "contact": {"email": "a@example.com"}}).values == {"email": "a@example.com"}


@pytest.mark.parametrize("version, data, field", [
    (1, {"shop_id": 1, "email": 5}, "email"),
    (1, {"shop_id": 1, "addresses": "Hauptstr"}, "addresses"),
    (1, {"shop_id": 1, "addresses": [{"type": "home"}]}, "addresses[0]"),
    (1, {"shop_id": True}, "external_ids.shop"),
    (1, {"shop_id": 1, "marketing_opt_in": "yes"}, "marketing_opt_in"),
    (2, {"ids": ["shop"]}, "ids"),
    (2, {"ids": {"shop": 1}, "contact": "a@example.com"}, "contact"),
    (2, {"ids": {"shop": 1}, "consent": {"marketing": 1}}, "consent.marketing"),
])
def test_ill_typed_fields_become_problems(version, data, field):
    patch = normalized(version, data)
    assert field in {p["field"] for p in patch.problems if p["severity"] == "error"}


def test_unknown_fields_are_warnings():
    patch = normalized(1, {"shop_id": 1, "nickname": "M"})
    assert patch.problems == [{"field": "nickname", "value": "M", "message": "unknown field in schema v1; ignored",
                               "severity": "warning"}]


def test_addresses_null_clears_both_types():
    assert normalized(1, {"shop_id": 1, "addresses": None}).values == {
        "addresses.billing": None, "addresses.shipping": None}
