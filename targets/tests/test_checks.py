"""System checks on targets: unset or missing secret references, rate limits slower than a pump's budget."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError

from targets import checks
from targets.models import Target
from tests.factories import target_create

SECRET_VALUE = "target-secret-value-never-shown-93c2"

pytestmark = pytest.mark.django_db


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def text(message) -> str:
    return f"{message.msg} {message.hint}"


def test_unset_secret_variable_is_a_warning_with_the_name_only(monkeypatch):
    monkeypatch.delenv("CDP_TOKEN_CHECK", raising=False)
    target_create("cdp", auth_kind=Target.AuthKind.BEARER, secret_refs={"token": "${CDP_TOKEN_CHECK}"})

    messages = checks.check_target_secrets()

    assert ids(messages) == ["targets.W001"]
    assert "'cdp'" in messages[0].msg and "CDP_TOKEN_CHECK" in messages[0].msg


def test_oauth2_client_id_reference_is_checked_too(monkeypatch):
    monkeypatch.setenv("OAUTH_SECRET_CHECK", SECRET_VALUE)
    monkeypatch.delenv("OAUTH_ID_CHECK", raising=False)
    target_create("crm", kind="crm", auth_kind=Target.AuthKind.OAUTH2, oauth_token_url="http://127.0.0.1:9/token",
                  oauth_client_id="${OAUTH_ID_CHECK}", secret_refs={"client_secret": "${OAUTH_SECRET_CHECK}"})

    messages = checks.check_target_secrets()

    assert ids(messages) == ["targets.W001"]
    assert "OAUTH_ID_CHECK" in messages[0].msg and "OAUTH_SECRET_CHECK" not in messages[0].msg
    assert SECRET_VALUE not in text(messages[0])


def test_missing_reference_for_the_auth_kind_is_a_warning():
    target_create("n8n", kind="webhook", auth_kind=Target.AuthKind.STANDARD_WEBHOOKS, secret_refs={})

    messages = checks.check_target_secrets()

    assert ids(messages) == ["targets.W002"]
    assert "'n8n'" in messages[0].msg and "'secret'" in messages[0].msg


def test_set_secrets_no_auth_and_disabled_targets_pass(monkeypatch):
    monkeypatch.setenv("CDP_TOKEN_CHECK", SECRET_VALUE)
    monkeypatch.delenv("CRM_KEY_CHECK", raising=False)
    target_create("cdp", auth_kind=Target.AuthKind.BEARER, secret_refs={"token": "${CDP_TOKEN_CHECK}"})
    target_create("open", kind="webhook", auth_kind=Target.AuthKind.NONE)
    target_create("crm", kind="crm", auth_kind=Target.AuthKind.API_KEY, secret_refs={"api_key": "${CRM_KEY_CHECK}"},
                  enabled=False)

    assert checks.check_target_secrets() == []


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_rate_limit_with_slots_longer_than_the_pump_budget_is_a_warning(limit):
    target_create("slow", rate_limit_per_minute=limit)

    messages = checks.check_target_rate_limits()

    assert ids(messages) == ["targets.W003"]
    assert "'slow'" in messages[0].msg and f"rate_limit_per_minute={limit}" in messages[0].msg
    assert "4 or more" in messages[0].hint


@pytest.mark.parametrize("limit", [0, 4, 600])
def test_unlimited_and_ordinary_rate_limits_pass(limit):
    target_create("cdp", rate_limit_per_minute=limit)
    target_create("off", rate_limit_per_minute=1, enabled=False)

    assert checks.check_target_rate_limits() == []


def test_checks_skip_quietly_without_the_table(monkeypatch):
    def no_table(*args, **kwargs):
        raise OperationalError("no such table: targets_target")

    monkeypatch.setattr(Target.objects, "filter", no_table)

    assert checks.check_target_secrets() == []
    assert checks.check_target_rate_limits() == []


def test_manage_py_check_prints_the_warning_without_the_value(monkeypatch):
    monkeypatch.setenv("CDP_TOKEN_CHECK", SECRET_VALUE)
    monkeypatch.delenv("CRM_KEY_CHECK", raising=False)
    target_create("cdp", auth_kind=Target.AuthKind.BEARER, secret_refs={"token": "${CDP_TOKEN_CHECK}"})
    target_create("crm", kind="crm", auth_kind=Target.AuthKind.API_KEY, secret_refs={"api_key": "${CRM_KEY_CHECK}"})
    stdout, stderr = StringIO(), StringIO()

    call_command("check", stdout=stdout, stderr=stderr)  # warnings only: no SystemCheckError

    assert "(targets.W001) target 'crm'" in stderr.getvalue()
    assert "CRM_KEY_CHECK" in stderr.getvalue()
    assert SECRET_VALUE not in stdout.getvalue() + stderr.getvalue()
