"""Importing the sync config's cdp, crm, targets and sync sections."""

import copy

import pytest

from core.config import SyncConfigError
from targets.models import Target, TargetFieldMapping
from targets.sync_config import import_targets

pytestmark = pytest.mark.django_db

DESIGN_EXAMPLE = {
    "environment": "dev",
    "cdp": {"base_url": "http://127.0.0.1:8100/cdp", "token": "${CDP_TOKEN}", "timeout_seconds": 20,
            "rate_limit_per_minute": 600},
    "crm": {"base_url": "http://127.0.0.1:8100/crm", "api_key": "${CRM_API_KEY}", "timeout_seconds": 20,
            "rate_limit_per_minute": 300},
    "webhooks": {"secret": "${WEBHOOK_SECRET}", "accepted_sources": ["shop", "crm", "support", "cmp"],
                 "schema_versions": [1]},
    "sync": {"dead_letter_queue": True, "max_retries": 5, "backoff_seconds": 0.5},
    "sources": {"support": {"signature_scheme": "standard-webhooks", "secrets": ["${SUPPORT_SECRET_OLD}", "${SUPPORT_SECRET}"],
                            "default_region": "AT", "schema_versions": [1, 2]}},
    "fields": {"email": {"strategy": "source_priority", "sources": ["crm", "shop", "support"]}},
    "targets": [{"name": "n8n", "kind": "webhook", "url": "http://127.0.0.1:5678/webhook/customer",
                 "secret": "${N8N_SECRET}"}],
}


def test_design_example_creates_three_targets_with_references_only():
    lines = import_targets(copy.deepcopy(DESIGN_EXAMPLE))

    assert lines == ["target cdp: created (cdp, bearer)", "target crm: created (crm, api_key)",
                     "target n8n: created (webhook, standard_webhooks)"]
    cdp, crm, n8n = Target.objects.order_by("name")[0], Target.objects.get(name="crm"), Target.objects.get(name="n8n")
    assert (cdp.kind, cdp.base_url, cdp.auth_kind, cdp.secret_refs) == (
        "cdp", "http://127.0.0.1:8100/cdp", "bearer", {"token": "${CDP_TOKEN}"})
    assert (cdp.timeout_seconds, cdp.rate_limit_per_minute, cdp.max_retries, cdp.backoff_seconds) == (20, 600, 5, 0.5)
    assert (crm.auth_kind, crm.secret_refs, crm.rate_limit_per_minute) == ("api_key", {"api_key": "${CRM_API_KEY}"}, 300)
    assert (n8n.kind, n8n.base_url, n8n.secret_refs) == (
        "webhook", "http://127.0.0.1:5678/webhook/customer", {"secret": "${N8N_SECRET}"})
    assert all(t.dead_letter_queue and t.enabled for t in (cdp, crm, n8n))
    assert list(cdp.field_mappings.values_list("canonical_field", "target_path"))[:3] == [
        ("id", "id"), ("external_ids", "external_ids"), ("email", "email")]


def test_import_is_idempotent_and_keeps_steward_mappings():
    import_targets(copy.deepcopy(DESIGN_EXAMPLE))
    crm = Target.objects.get(name="crm")
    TargetFieldMapping.objects.create(target=crm, canonical_field="locale", target_path="language", order=99)
    mappings = TargetFieldMapping.objects.count()

    lines = import_targets(copy.deepcopy(DESIGN_EXAMPLE))

    assert lines == ["target cdp: unchanged", "target crm: unchanged", "target n8n: unchanged"]
    assert TargetFieldMapping.objects.count() == mappings
    assert Target.objects.count() == 3


def test_sync_defaults_apply_to_every_target_and_sections_may_override():
    config = copy.deepcopy(DESIGN_EXAMPLE)
    config["sync"] = {"dead_letter_queue": False, "max_retries": 2, "backoff_seconds": 1.5}
    config["crm"]["max_retries"] = 9
    import_targets(config)
    assert {t.name: (t.max_retries, t.backoff_seconds, t.dead_letter_queue) for t in Target.objects.all()} == {
        "cdp": (2, 1.5, False), "crm": (9, 1.5, False), "n8n": (2, 1.5, False)}


def test_targets_missing_from_the_file_are_disabled_not_deleted():
    import_targets(copy.deepcopy(DESIGN_EXAMPLE))
    config = copy.deepcopy(DESIGN_EXAMPLE)
    del config["targets"]
    lines = import_targets(config)
    assert "target n8n: disabled (not in the config)" in lines
    assert Target.objects.get(name="n8n").enabled is False
    import_targets(copy.deepcopy(DESIGN_EXAMPLE))
    assert Target.objects.get(name="n8n").enabled is True


def test_oauth2_auth_for_a_cdp_target():
    config = copy.deepcopy(DESIGN_EXAMPLE)
    config["cdp"] = {"base_url": "https://cdp.example.com/api", "auth": "oauth2",
                     "token_url": "https://auth.example.com/token", "client_id": "${CDP_CLIENT_ID}",
                     "client_secret": "${CDP_CLIENT_SECRET}", "scope": "customers:write"}
    import_targets(config)
    cdp = Target.objects.get(name="cdp")
    assert (cdp.auth_kind, cdp.oauth_token_url, cdp.oauth_client_id, cdp.oauth_scope, cdp.secret_refs) == (
        "oauth2", "https://auth.example.com/token", "${CDP_CLIENT_ID}", "customers:write",
        {"client_secret": "${CDP_CLIENT_SECRET}"})


@pytest.mark.parametrize("mutate,path", [
    (lambda c: c["cdp"].update(token="sk_live_literal_value"), "cdp.token"),
    (lambda c: c["crm"].update(api_key="plain-key"), "crm.api_key"),
    (lambda c: c["targets"][0].update(secret="whsec_abc"), "targets[0].secret"),
    (lambda c: c["cdp"].pop("base_url"), "cdp.base_url"),
    (lambda c: c["crm"].update(base_url="ftp://x"), "crm.base_url"),
    (lambda c: c["cdp"].update(rate_limit_per_minute="fast"), "cdp.rate_limit_per_minute"),
    (lambda c: c["sync"].update(max_retries=-1), "sync.max_retries"),
    (lambda c: c["sync"].update(dead_letter_queue="yes"), "sync.dead_letter_queue"),
    (lambda c: c["targets"][0].update(kind="fax"), "targets[0].kind"),
    (lambda c: c["targets"][0].pop("name"), "targets[0].name"),
    (lambda c: c["targets"][0].pop("secret"), "targets[0].secret"),
    (lambda c: c["cdp"].update(tokn="${X}"), "cdp.tokn"),
])
def test_invalid_config_names_the_key_and_never_echoes_a_literal(mutate, path):
    config = copy.deepcopy(DESIGN_EXAMPLE)
    mutate(config)
    with pytest.raises(SyncConfigError) as excinfo:
        import_targets(config)
    assert excinfo.value.path == path
    for literal in ("sk_live_literal_value", "plain-key", "whsec_abc"):
        assert literal not in str(excinfo.value)
    assert Target.objects.count() == 0


def test_retry_window_defaults_to_72_hours_and_a_section_may_override():
    config = copy.deepcopy(DESIGN_EXAMPLE)
    import_targets(copy.deepcopy(config))
    assert set(Target.objects.values_list("retry_window_hours", flat=True)) == {72}
    config["sync"]["retry_window_hours"] = 24
    config["crm"]["retry_window_hours"] = 0.5
    lines = import_targets(config)
    assert "target crm: updated (retry_window_hours)" in lines
    assert dict(Target.objects.values_list("name", "retry_window_hours")) == {"cdp": 24, "crm": 0.5, "n8n": 24}


@pytest.mark.parametrize("mutate,path", [
    (lambda c: c["sync"].update(retry_window_hours=0), "sync.retry_window_hours"),
    (lambda c: c["sync"].update(retry_window_hours=-3), "sync.retry_window_hours"),
    (lambda c: c["sync"].update(retry_window_hours=721), "sync.retry_window_hours"),
    (lambda c: c["sync"].update(retry_window_hours="72"), "sync.retry_window_hours"),
    (lambda c: c["sync"].update(retry_window_hours=True), "sync.retry_window_hours"),
    (lambda c: c["sync"].update(retry_window_hours=float("nan")), "sync.retry_window_hours"),
    (lambda c: c["crm"].update(retry_window_hours=10_000), "crm.retry_window_hours"),
    (lambda c: c["targets"][0].update(retry_window_hours=0), "targets[0].retry_window_hours"),
])
def test_a_bad_retry_window_is_refused_with_the_key_named(mutate, path):
    config = copy.deepcopy(DESIGN_EXAMPLE)
    mutate(config)
    with pytest.raises(SyncConfigError) as excinfo:
        import_targets(config)
    assert excinfo.value.path == path
    assert "retry_window_hours" in str(excinfo.value)
    assert Target.objects.count() == 0
