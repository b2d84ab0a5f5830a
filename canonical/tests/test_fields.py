"""The field registry drives every field list: export, rules, patch, API, targets, reconciliation, import."""

import io
import json

import pytest
from django.core.management import call_command

from canonical import fields
from canonical.defaults import DEFAULT_RULES
from canonical.identity import wipe_personal_fields
from canonical.mappers import map_data
from canonical.models import Customer, FieldOverride, RuleField, SourcePriorityRule, SourceValue
from canonical.patch import patch_normalize
from canonical.selectors import customer_snapshot
from canonical.serializers import CustomerSerializer
from canonical.survivorship import STRATEGIES
from reconciliation.admin import FieldFilter
from reconciliation.batch_import import CSV_FIELDS
from reconciliation.compare import COMPARABLE_FIELDS, VOLATILE_FIELDS
from targets.mapping import CANONICAL_FIELDS, DEFAULT_MAPPINGS

from .factories import apply, make_event

# DESIGN.md "Contract: commands and read side": the export line, keys in this order.
EXPORT_CONTRACT = ("id", "version", "external_ids", "email", "phone", "first_name", "last_name", "locale",
                   "addresses", "marketing_opt_in", "marketing_opt_in_at", "deleted", "updated_at")


def test_export_fields_are_the_contract_in_order():
    assert fields.EXPORT_FIELDS == EXPORT_CONTRACT
    assert fields.SNAPSHOT_FIELDS == (*EXPORT_CONTRACT, "last_source")


@pytest.mark.django_db
def test_the_export_line_and_the_api_follow_the_registry():
    # given a customer with every kind of value
    customer_id = apply(make_event({
        "shop_id": 1, "email": "a@example.com", "phone": "+4915123456789", "first_name": "Max", "locale": "de_DE",
        "addresses": [{"type": "billing", "line1": "Hauptstr. 1", "country": "DE"}],
    })).customer_id
    apply(make_event({"shop_id": 1, "marketing_opt_in": True, "marketing_opt_in_at": "2026-01-14T09:00:00Z"},
                     source="cmp", minutes=1))

    # when it is exported
    out = io.StringIO()
    call_command("export_customers", stdout=out, stderr=io.StringIO())
    line = out.getvalue().splitlines()[0]

    # then the keys are the contract's, in its order, and the API shows the snapshot's fields
    assert tuple(json.loads(line)) == EXPORT_CONTRACT
    assert line.startswith(f'{{"id":{customer_id},"version":2,"external_ids":{{"shop":"1"}},"email":"a@example.com",')
    assert '"marketing_opt_in":true,"marketing_opt_in_at":"2026-01-14T09:00:00Z","deleted":false,"updated_at":' in line
    customer = Customer.objects.get(pk=customer_id)
    assert tuple(customer_snapshot(customer=customer)) == fields.SNAPSHOT_FIELDS
    assert tuple(CustomerSerializer().fields) == fields.SNAPSHOT_FIELDS
    assert tuple(CustomerSerializer(customer).data) == fields.SNAPSHOT_FIELDS


def test_rule_choices_and_strategies_come_from_the_registry():
    assert RuleField.choices == fields.RULE_CHOICES
    assert tuple(RuleField.values) == fields.RULE_FIELDS == (
        "email", "phone", "first_name", "last_name", "locale", "addresses.billing", "addresses.shipping",
        "marketing_opt_in")
    for model in (SourcePriorityRule, SourceValue, FieldOverride):
        assert model._meta.get_field("field").choices == fields.RULE_CHOICES
    assert set(DEFAULT_RULES) == set(fields.RULE_FIELDS)
    assert tuple(SourcePriorityRule.Strategy.values) == STRATEGIES
    assert fields.RULE_ALIASES == {"addresses": ["addresses.billing", "addresses.shipping"]}


def test_the_patch_carries_the_registry_patch_fields():
    assert fields.PATCH_FIELDS == ("email", "phone", "first_name", "last_name", "locale", "addresses",
                                   "marketing_opt_in", "marketing_opt_in_at")
    data = {"email": "a@example.com", "phone": "+4915123456789", "first_name": "Max", "last_name": "M",
            "locale": "de-DE", "addresses": [], "marketing_opt_in": True, "marketing_opt_in_at": None}
    assert set(data) == set(fields.PATCH_FIELDS)
    raw = map_data(schema_version=1, data=data)
    assert tuple(raw.fields) == fields.PATCH_FIELDS and raw.problems == []
    normalized = patch_normalize(raw=raw, default_region="DE")
    assert set(normalized.values) == set(fields.RULE_FIELDS) and normalized.problems == []


def test_golden_fields_are_wiped_per_kind():
    customer = Customer(email="a@example.com", phone="+4915123456789", first_name="Max", last_name="M",
                        locale="de-DE", addresses=[{"type": "billing"}], marketing_opt_in=True)
    wipe_personal_fields(customer)
    assert {name: getattr(customer, name) for name in fields.GOLDEN_FIELDS} == {
        "email": "", "phone": "", "first_name": "", "last_name": "", "locale": "", "addresses": [],
        "marketing_opt_in": None, "marketing_opt_in_at": None}


def test_targets_reconciliation_and_import_derive_their_lists():
    assert DEFAULT_MAPPINGS["webhook"] == [(name, name) for name in EXPORT_CONTRACT]
    assert CANONICAL_FIELDS == (*fields.SNAPSHOT_FIELDS, "custsync_id")
    assert VOLATILE_FIELDS == {"id", "version", "updated_at", "last_source"}
    assert COMPARABLE_FIELDS == tuple(name for name in EXPORT_CONTRACT if name not in VOLATILE_FIELDS)
    lookups = FieldFilter(None, {}, Customer, None).lookups(None, None)
    assert [name for name, _ in lookups] == list(COMPARABLE_FIELDS)
    assert CSV_FIELDS == tuple(name for name in fields.PATCH_FIELDS if name != "addresses")


def test_every_golden_field_is_a_customer_column():
    columns = {f.name for f in Customer._meta.get_fields()}
    assert set(fields.GOLDEN_FIELDS) <= columns
