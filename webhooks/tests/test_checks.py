"""System checks on sources: unmapped schema versions, unset or missing secret references."""

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import OperationalError

from canonical.mappers import supported_versions
from webhooks import checks
from webhooks.models import Source

SECRET_VALUE = "source-secret-value-never-shown-5b1e"
UNMAPPED = max(supported_versions()) + 1

pytestmark = pytest.mark.django_db


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def text(message) -> str:
    return f"{message.msg} {message.hint}"


def test_unmapped_schema_version_is_an_error_naming_the_source_and_version():
    Source.objects.create(name="shop", secret_refs=["${WEBHOOK_SECRET}"], schema_versions=[1, UNMAPPED])

    messages = checks.check_source_schema_versions()

    assert ids(messages) == ["webhooks.E001"]
    assert "'shop'" in messages[0].msg and str(UNMAPPED) in messages[0].msg
    assert messages[0].obj.name == "shop"


def test_mapped_schema_versions_and_disabled_sources_pass():
    Source.objects.create(name="shop", schema_versions=supported_versions())
    Source.objects.create(name="old", enabled=False, schema_versions=[UNMAPPED])

    assert checks.check_source_schema_versions() == []


def test_unset_secret_variable_is_a_warning_with_the_name_only(monkeypatch):
    monkeypatch.setenv("SHOP_SECRET_NEW", SECRET_VALUE)
    monkeypatch.delenv("SHOP_SECRET_OLD", raising=False)
    Source.objects.create(name="shop", secret_refs=["${SHOP_SECRET_NEW}", "${SHOP_SECRET_OLD}"])

    messages = checks.check_source_secrets()

    assert ids(messages) == ["webhooks.W001"]
    assert "'shop'" in messages[0].msg and "SHOP_SECRET_OLD" in messages[0].msg
    assert "SHOP_SECRET_NEW" not in messages[0].msg  # only the unset one
    assert "1 other reference(s) still verify" in messages[0].msg
    assert SECRET_VALUE not in text(messages[0])


def test_every_secret_unset_says_the_source_answers_503(monkeypatch):
    monkeypatch.delenv("SHOP_SECRET_OLD", raising=False)
    Source.objects.create(name="shop", secret_refs=["${SHOP_SECRET_OLD}"])

    messages = checks.check_source_secrets()

    assert ids(messages) == ["webhooks.W001"]
    assert "503" in messages[0].msg


def test_empty_variable_counts_as_unset(monkeypatch):
    monkeypatch.setenv("SHOP_SECRET_OLD", "")
    Source.objects.create(name="shop", secret_refs=["${SHOP_SECRET_OLD}"])

    assert ids(checks.check_source_secrets()) == ["webhooks.W001"]


def test_source_without_references_is_a_warning():
    Source.objects.create(name="shop", secret_refs=[])

    messages = checks.check_source_secrets()

    assert ids(messages) == ["webhooks.W002"]
    assert "'shop'" in messages[0].msg


def test_set_secrets_and_disabled_sources_pass(monkeypatch):
    monkeypatch.setenv("SHOP_SECRET_NEW", SECRET_VALUE)
    monkeypatch.delenv("SHOP_SECRET_OLD", raising=False)
    Source.objects.create(name="shop", secret_refs=["${SHOP_SECRET_NEW}"])
    Source.objects.create(name="old", enabled=False, secret_refs=["${SHOP_SECRET_OLD}"])

    assert checks.check_source_secrets() == []


def test_checks_skip_quietly_without_the_table(monkeypatch):
    def no_table(*args, **kwargs):
        raise OperationalError("no such table: webhooks_source")

    monkeypatch.setattr(Source.objects, "filter", no_table)

    assert checks.check_source_schema_versions() == []
    assert checks.check_source_secrets() == []


def test_checks_for_other_apps_only_skip_sources():
    Source.objects.create(name="shop", secret_refs=[], schema_versions=[UNMAPPED])

    assert checks.check_source_secrets(app_configs=[apps.get_app_config("targets")]) == []
    assert ids(checks.check_source_secrets(app_configs=[apps.get_app_config("webhooks")])) == ["webhooks.W002"]


def test_manage_py_check_reports_them(monkeypatch):
    monkeypatch.setenv("SHOP_SECRET_NEW", SECRET_VALUE)
    Source.objects.create(name="shop", secret_refs=["${SHOP_SECRET_NEW}"], schema_versions=[1, UNMAPPED])
    stderr = StringIO()

    with pytest.raises(SystemCheckError) as raised:
        call_command("check", stdout=StringIO(), stderr=stderr)

    assert "webhooks.E001" in str(raised.value)
    assert SECRET_VALUE not in str(raised.value) + stderr.getvalue()
