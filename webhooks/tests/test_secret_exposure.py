"""Secret values never reach logs, admin pages, responses or database rows."""

import json
import logging

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from webhooks.models import InboxEvent, Source

from .conftest import SHOP_SECRET, SUPPORT_SECRET, SUPPORT_SECRET_OLD, body_of, hmac_headers, sample_event, standard_headers

pytestmark = pytest.mark.django_db

SECRET_VALUES = [SHOP_SECRET, SUPPORT_SECRET, SUPPORT_SECRET_OLD,
                 SUPPORT_SECRET.removeprefix("whsec_"), SUPPORT_SECRET_OLD.removeprefix("whsec_")]


def assert_no_secret(text: str, where: str):
    for value in SECRET_VALUES:
        assert value not in text, f"a secret value appears in {where}"


def _row_text(model) -> str:
    """Every text and JSON column of every row, as one string."""
    columns = [f.attname for f in model._meta.concrete_fields
               if f.get_internal_type() in ("CharField", "TextField", "JSONField", "SlugField")]
    return json.dumps(list(model.objects.values_list(*columns)), default=str)


def test_no_secret_value_in_logs_responses_admin_or_database(admin_client, client, shop, support, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    responses = []
    # accepted, duplicate, wrong secret, stale, both schemes, unknown source, bad JSON
    body = body_of(sample_event())
    for headers in (hmac_headers(body), hmac_headers(body), hmac_headers(body, secret="wrong"),
                    hmac_headers(body, timestamp=1)):
        responses.append(client.generic("POST", "/webhooks/customer", body, content_type="application/json",
                                        headers=headers))
    sup = body_of(sample_event(source="support", event_id="s1"))
    responses.append(client.generic("POST", "/webhooks/customer", sup, content_type="application/json",
                                    headers=standard_headers(sup, secret=SUPPORT_SECRET_OLD)))
    responses.append(client.generic("POST", "/webhooks/customer", sup, content_type="application/json",
                                    headers=standard_headers(sup, secret="whsec_d3Jvbmc=")))
    # a misconfigured source: the variable holds something unusable for its scheme
    monkeypatch.setenv("SUPPORT_SECRET", "not base64 !!" + SHOP_SECRET)
    responses.append(client.generic("POST", "/webhooks/customer", sup, content_type="application/json",
                                    headers=standard_headers(sup, secret=SUPPORT_SECRET_OLD)))
    monkeypatch.setenv("SUPPORT_SECRET", SUPPORT_SECRET)
    assert [r.status_code for r in responses] == [202, 202, 401, 401, 202, 401, 202]
    for response in responses:
        assert_no_secret(response.content.decode(), "a response")

    # admin pages, as a superuser
    event = InboxEvent.objects.first()
    for url in (reverse("admin:webhooks_source_changelist"),
                reverse("admin:webhooks_source_change", args=[shop.pk]),
                reverse("admin:webhooks_source_change", args=[support.pk]),
                reverse("admin:webhooks_inboxevent_changelist"),
                reverse("admin:webhooks_inboxevent_change", args=[event.pk])):
        page = admin_client.get(url)
        assert page.status_code == 200, url
        assert_no_secret(page.content.decode(), url)

    assert_no_secret(caplog.text, "the logs")
    for model in (Source, InboxEvent, LogEntry):
        assert_no_secret(_row_text(model), f"{model.__name__} rows")
    assert "${WEBHOOK_SECRET}" in _row_text(Source)  # the scan does read the columns


def test_import_warnings_and_errors_never_show_values(tmp_path, secrets_env, settings, caplog):
    from io import StringIO

    from django.core.management import CommandError, call_command

    settings.SYNC_CONFIG_IMPORTERS = ["webhooks.sync_config.import_sources"]
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"webhooks": {"secret": SHOP_SECRET, "accepted_sources": ["shop"]}}))
    with pytest.raises(CommandError) as info:
        call_command("import_sync_config", str(path), stdout=StringIO(), stderr=StringIO())
    assert_no_secret(str(info.value), "the command error")
    assert_no_secret(caplog.text, "the logs")
