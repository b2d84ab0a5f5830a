"""import_sync_config as an operator runs it, and the sources importer behind it."""

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from core.config import SyncConfigError
from webhooks.models import Source
from webhooks.sync_config import import_sources

pytestmark = pytest.mark.django_db

DESIGN_EXAMPLE = Path(__file__).parent / "data" / "design_example_config.json"
ONLY_SOURCES = ["webhooks.sync_config.import_sources"]


def run(path, *args):
    from io import StringIO

    out, err = StringIO(), StringIO()
    call_command("import_sync_config", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def write(tmp_path, config, name="config.json") -> Path:
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return path


def sources_state():
    return {
        s.name: (s.enabled, s.signature_scheme, s.secret_refs, s.schema_versions, s.event_types, s.default_region)
        for s in Source.objects.all()
    }


def test_design_example_imports_as_is(secrets_env, monkeypatch):
    for name in ("CDP_TOKEN", "CRM_API_KEY", "N8N_SECRET"):
        monkeypatch.setenv(name, "x")
    out, err = run(DESIGN_EXAMPLE)
    assert "imported" in out
    both = ["customer.upsert", "customer.delete"]
    assert sources_state() == {
        "cmp": (True, "hmac-sha256", ["${WEBHOOK_SECRET}"], [1], both, "DE"),
        "crm": (True, "hmac-sha256", ["${WEBHOOK_SECRET}"], [1], both, "DE"),
        "shop": (True, "hmac-sha256", ["${WEBHOOK_SECRET}"], [1], both, "DE"),
        "support": (True, "standard-webhooks", ["${SUPPORT_SECRET_OLD}", "${SUPPORT_SECRET}"], [1, 2], both, "AT"),
    }
    assert "warning" not in err


def test_importing_twice_changes_nothing(secrets_env, settings):
    settings.SYNC_CONFIG_IMPORTERS = ONLY_SOURCES
    run(DESIGN_EXAMPLE)
    before = {s.name: (s.pk, s.updated_at) for s in Source.objects.all()}
    state = sources_state()
    out, _ = run(DESIGN_EXAMPLE)
    assert out.count("unchanged") == 4
    assert sources_state() == state
    assert {s.name: (s.pk, s.updated_at) for s in Source.objects.all()} == before


def test_missing_variables_are_warned_by_name_not_an_error(settings, monkeypatch, tmp_path):
    settings.SYNC_CONFIG_IMPORTERS = ONLY_SOURCES
    for name in ("WEBHOOK_SECRET", "SUPPORT_SECRET", "SUPPORT_SECRET_OLD", "CDP_TOKEN", "CRM_API_KEY", "N8N_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUPPORT_SECRET", "whsec_c2VjcmV0")
    out, err = run(DESIGN_EXAMPLE)
    assert "imported" in out
    for name in ("WEBHOOK_SECRET", "SUPPORT_SECRET_OLD", "CDP_TOKEN", "CRM_API_KEY", "N8N_SECRET"):
        assert f"environment variable {name} is not set" in err
    assert "SUPPORT_SECRET is not set" not in err
    assert Source.objects.count() == 4


def test_updates_in_place_and_disables_sources_no_longer_listed(secrets_env, settings, tmp_path):
    settings.SYNC_CONFIG_IMPORTERS = ONLY_SOURCES
    run(DESIGN_EXAMPLE)
    shop_pk = Source.objects.get(name="shop").pk
    config = json.loads(DESIGN_EXAMPLE.read_text())
    config["webhooks"]["accepted_sources"] = ["shop", "support"]
    config["webhooks"]["schema_versions"] = [2, 1]
    out, _ = run(write(tmp_path, config))
    assert "source shop: updated (schema_versions)" in out
    assert "source crm: disabled" in out and "source cmp: disabled" in out
    state = sources_state()
    assert state["shop"][3] == [1, 2] and Source.objects.get(name="shop").pk == shop_pk
    assert state["crm"][0] is False and state["cmp"][0] is False
    # listed again: enabled again
    run(DESIGN_EXAMPLE)
    assert Source.objects.get(name="crm").enabled is True


def test_source_only_in_sources_is_accepted(secrets_env):
    import_sources({"webhooks": {"secret": "${WEBHOOK_SECRET}", "accepted_sources": ["shop"]},
                    "sources": {"erp": {"secret": "${ERP_SECRET}", "default_region": "CH"}}})
    assert sources_state()["erp"] == (True, "hmac-sha256", ["${ERP_SECRET}"], [1],
                                      ["customer.upsert", "customer.delete"], "CH")


@pytest.mark.parametrize("config, path", [
    ({"webhooks": {"secret": "hunter2-literal", "accepted_sources": ["shop"]}}, "webhooks.secret"),
    ({"webhooks": {"secret": "${OK}", "accepted_sources": ["shop"]},
      "sources": {"support": {"secrets": ["${OK}", "hunter2-literal"]}}}, "sources.support.secrets[1]"),
    ({"webhooks": {"secret": "${OK}", "accepted_sources": ["shop"]},
      "sources": {"support": {"secret": "hunter2-literal"}}}, "sources.support.secret"),
])
def test_literal_secrets_are_refused_without_echoing_them(config, path):
    with pytest.raises(SyncConfigError) as info:
        import_sources(config)
    assert info.value.path == path
    assert "hunter2" not in str(info.value)
    assert not Source.objects.exists()


@pytest.mark.parametrize("config, path, fragment", [
    ({"webhooks": []}, "webhooks", "must be an object"),
    ({"webhooks": {"secret": "${S}", "accepted_sources": "shop"}}, "webhooks.accepted_sources", "list"),
    ({"webhooks": {"secret": "${S}", "accepted_sources": ["shop", "shop"]}}, "webhooks.accepted_sources", "twice"),
    ({"webhooks": {"secret": "${S}", "accepted_sources": ["Shop Nr 1"]}}, "webhooks.accepted_sources[0]", "not a valid"),
    ({"webhooks": {"secret": "${S}", "accepted_sources": [1]}}, "webhooks.accepted_sources[0]", "string"),
    ({"webhooks": {"secret": "${S}", "accepted_sources": ["shop"], "schema_versions": ["1"]}},
     "webhooks.schema_versions", "positive integers"),
    ({"webhooks": {"secret": "${S}", "accepted_sources": ["shop"], "secrets": []}}, "webhooks", "unknown key(s): secrets"),
    ({"webhooks": {"accepted_sources": ["shop"]}}, "webhooks.secret", "no secret"),
    ({"webhooks": {"secret": "${S}"}, "sources": {"x": {"signature_scheme": "md5"}}},
     "sources.x.signature_scheme", "hmac-sha256, standard-webhooks"),
    ({"webhooks": {"secret": "${S}"}, "sources": {"x": {"default_region": "de"}}}, "sources.x.default_region", "upper-case"),
    ({"webhooks": {"secret": "${S}"}, "sources": {"x": {"default_region": "XX"}}}, "sources.x.default_region", "ISO"),
    ({"webhooks": {"secret": "${S}"}, "sources": {"x": {"secret": "${A}", "secrets": ["${B}"]}}}, "sources.x", "not both"),
    ({"webhooks": {"secret": "${S}"}, "sources": {"x": {"secrets": []}}}, "sources.x.secrets", "non-empty"),
    ({"webhooks": {"secret": "${S}"}, "sources": {"x": {"colour": "red"}}}, "sources.x", "unknown key(s): colour"),
    ({"webhooks": {"secret": "${S}"}, "sources": {"x": []}}, "sources.x", "must be an object"),
    ({"webhooks": {"secret": "${S}"}, "sources": []}, "sources", "must be an object"),
    ({"webhooks": {"secret": "${S}"}, "sources": {"x": {"event_types": ["customer.merge"]}}},
     "sources.x.event_types", "customer.upsert"),
])
def test_bad_shapes_name_the_key(config, path, fragment):
    with pytest.raises(SyncConfigError) as info:
        import_sources(config)
    assert info.value.path == path, str(info.value)
    assert fragment in str(info.value)


def test_command_errors(tmp_path, settings):
    settings.SYNC_CONFIG_IMPORTERS = ONLY_SOURCES
    with pytest.raises(CommandError, match="file not found"):
        run(tmp_path / "missing.json")
    with pytest.raises(CommandError, match="not valid JSON: Expecting ',' delimiter at line 2 column 3"):
        run(write(tmp_path, '{"a": 1\n  "b": 2}'))
    with pytest.raises(CommandError, match="must hold a JSON object at the top level, got list"):
        run(write(tmp_path, "[]"))
    with pytest.raises(CommandError, match=r"unknown top-level key\(s\): colour, webhook "):
        run(write(tmp_path, {"webhook": {}, "colour": 1, "environment": "dev"}))
    with pytest.raises(CommandError, match="duplicate key 'webhooks'"):
        run(write(tmp_path, '{"webhooks": {}, "webhooks": {}}'))
    with pytest.raises(CommandError, match="webhooks.secret: must be an environment reference"):
        run(write(tmp_path, {"webhooks": {"secret": "literal", "accepted_sources": ["shop"]}}))


def test_check_writes_nothing(secrets_env, settings):
    settings.SYNC_CONFIG_IMPORTERS = ONLY_SOURCES
    out, _ = run(DESIGN_EXAMPLE, "--check")
    assert "source shop: created" in out and "check only, nothing written" in out
    assert not Source.objects.exists()


def test_one_transaction_for_all_importers(secrets_env, settings):
    """A failing later importer rolls back what earlier ones wrote."""
    settings.SYNC_CONFIG_IMPORTERS = ONLY_SOURCES + ["webhooks.tests.test_sync_config.failing_importer"]
    with pytest.raises(CommandError, match="fields.email: boom"):
        run(DESIGN_EXAMPLE)
    assert not Source.objects.exists()


def failing_importer(config):
    raise SyncConfigError("fields.email", "boom")
