import pytest

from canonical.models import SourcePriorityRule
from canonical.sync_config import import_fields
from core.config import SyncConfigError

pytestmark = pytest.mark.django_db


def rules():
    return {r.field: (r.strategy, r.sources) for r in SourcePriorityRule.objects.all()}


def test_defaults_from_migration():
    assert rules()["marketing_opt_in"] == ("last_write_wins", ["cmp"])
    assert rules()["addresses.billing"][1][0] == "erp"
    assert len(rules()) == 8


def test_import_is_idempotent_and_addresses_expand():
    config = {"fields": {"email": {"strategy": "source_priority", "sources": ["crm", "shop", "support"]},
                         "addresses": {"strategy": "last_write_wins", "sources": ["shop"]},
                         "addresses.billing": {"sources": ["erp"]},
                         "marketing_opt_in": {"strategy": "last_write_wins", "sources": ["cmp"]}}}
    lines = import_fields(config)
    assert lines == [
        "fields.addresses.billing: source_priority [erp] (updated)",
        "fields.addresses.shipping: last_write_wins [shop] (updated)",
        "fields.email: source_priority [crm, shop, support] (unchanged)",
        "fields.marketing_opt_in: last_write_wins [cmp] (unchanged)",
    ]
    first = rules()
    assert all(line.endswith("(unchanged)") for line in import_fields(config))
    assert rules() == first
    assert first["addresses.shipping"] == ("last_write_wins", ["shop"])
    assert first["addresses.billing"] == ("source_priority", ["erp"])
    assert import_fields({}) == ["fields: no fields section; field rules left as they are"]
    assert rules() == first


@pytest.mark.parametrize("fields, path", [
    ({"nickname": {}}, "fields.nickname"),
    ({"email": {"strategy": "random"}}, "fields.email.strategy"),
    ({"email": {"sources": "crm"}}, "fields.email.sources"),
    ({"email": {"sources": ["crm", "crm"]}}, "fields.email.sources"),
    ({"email": {"source": ["crm"]}}, "fields.email.source"),
    ({"email": ["crm"]}, "fields.email"),
    ({"marketing_opt_in_at": {}}, "fields.marketing_opt_in_at"),
    (["email"], "fields"),
])
def test_bad_config_names_the_path(fields, path):
    before = rules()
    with pytest.raises(SyncConfigError) as error:
        import_fields({"fields": fields})
    assert error.value.path == path
    assert rules() == before
