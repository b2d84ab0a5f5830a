"""No secret or token in any page or log line; no full personal data in logs.

Secrets are set to distinctive values in the environment. Logs are captured
at DEBUG through the project's own formatters (JSON and text, so `extra=`
fields are searched too) over a whole run: webhooks with valid and invalid
signatures, processing by the pipeline task, and delivery to an in-process
sandbox with every auth kind (bearer, API key, OAuth2, Standard Webhooks),
including refusals and retries. Pages: every admin URL as a superuser, the
OpenAPI schema and docs, the read API and the operator endpoints.
"""

import base64
import logging
import random
import time

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token

from canonical.models import Customer
from core.logging import CorrelationFilter, JsonFormatter, TextFormatter
from webhooks.processing import inbox_event_process
from targets.models import OutboxMessage
from targets.services import outbox_deliver_due, worker_id
from targets.tests.support import TEST_SECRETS, make_target, sandbox, target_env  # noqa: F401
from webhooks.models import InboxEvent

from .conftest import SECRETS_ENV, body_of, event, hmac_headers, standard_headers
from .test_admin_access import admin_urls

pytestmark = pytest.mark.django_db

EMAIL = "Leak.Check-Person@Example.com"
PHONE_RAW = "0049 151 2345 6789"
PII = [EMAIL, EMAIL.lower(), PHONE_RAW, "+4915123456789", "015123456789"]


def secret_values() -> list[str]:
    values = list(SECRETS_ENV.values()) + list(TEST_SECRETS.values())
    values += [v.removeprefix("whsec_") for v in values if v.startswith("whsec_")]
    values.append(settings.SECRET_KEY)
    values += [v for v in (settings.DATABASES["default"].get("PASSWORD"),) if v]
    # OAuth client id is an identifier, not a secret; everything else must never appear
    return [v for v in values if v and v != TEST_SECRETS["OAUTH_CLIENT_ID"]]


@pytest.fixture
def captured_logs(caplog):
    """All log records at DEBUG, formatted by the project's JSON and text formatters."""
    caplog.set_level(logging.DEBUG)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(JsonFormatter().format(record))
            lines.append(TextFormatter().format(record))

    handler = Collect(level=logging.DEBUG)
    handler.addFilter(CorrelationFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lines
    root.removeHandler(handler)


@pytest.fixture
def full_run(shop, support, sandbox, captured_logs, monkeypatch, django_capture_on_commit_callbacks):  # noqa: F811
    monkeypatch.setattr("django_q.tasks.async_task", lambda *a, **k: None)
    targets = [make_target(sandbox, "cdp"), make_target(sandbox, "crm"), make_target(sandbox, "webhook"),
               make_target(sandbox, "cdp", name="cdp-oauth", auth="oauth2")]
    # a target whose token is wrong: the sandbox answers 401, which is logged and recorded
    monkeypatch.setenv("WRONG_TOKEN", "sec-wrong-token-Vb6Nq2Lp")
    targets.append(make_target(sandbox, "cdp", name="cdp-wrong", secret_refs={"token": "${WRONG_TOKEN}"},
                               max_retries=0))
    client = Client()
    data = {"shop_id": 777, "email": EMAIL, "phone": PHONE_RAW, "first_name": "Lea", "last_name": "Leakcheck"}
    statuses = []
    for i, (source, sign) in enumerate([("shop", hmac_headers), ("support", standard_headers)]):
        body = body_of(event(source=source, event_id=f"evt_leak_{i}", data=data))
        statuses.append(client.generic("POST", "/webhooks/customer", body, content_type="application/json",
                                       headers=sign(body)).status_code)
        bad = sign(body, secret="whsec_" + base64.b64encode(b"not-the-secret-xx").decode()) \
            if source == "support" else sign(body, secret="not-the-secret")
        statuses.append(client.generic("POST", "/webhooks/customer", body, content_type="application/json",
                                       headers=bad).status_code)
    assert statuses == [202, 401, 202, 401]
    for inbox in InboxEvent.objects.order_by("pk"):
        assert inbox_event_process(inbox.pk) == "processed"
    sandbox.state.set_faults("crm", plan=[{"status": 503}])  # one retry on the way
    for target in targets:
        for _ in range(3):
            outbox_deliver_due(target_id=target.pk, owner=worker_id(), deadline=time.monotonic() + 3,
                               wait_for_due=True, rng=random.Random(1))
    delivered = set(OutboxMessage.objects.filter(status="delivered").values_list("target__name", flat=True))
    assert {"cdp", "crm", "webhook", "cdp-oauth"} <= delivered, delivered
    assert OutboxMessage.objects.get(target__name="cdp-wrong").status in ("dead", "discarded", "pending")
    assert sandbox.state.tokens_issued >= 1
    return list(sandbox.state.oauth_tokens), targets


@pytest.fixture
def shop(db, secrets_env):
    from webhooks.models import Source

    return Source.objects.create(name="shop", secret_refs=["${SEC_SHOP_SECRET}"])


@pytest.fixture
def support(db, secrets_env):
    from webhooks.models import Source

    return Source.objects.create(name="support", signature_scheme="standard-webhooks",
                                 secret_refs=["${SEC_SUPPORT_SECRET}"], schema_versions=[1, 2])


def test_no_secret_token_or_full_personal_data_in_any_log_line(full_run, captured_logs):
    oauth_tokens, _targets = full_run
    text = "\n".join(captured_logs)
    assert len(captured_logs) > 10, "nothing was logged: the capture is broken"
    assert "webhook refused" in text and "inbox event processed" in text  # the run did log
    for value in secret_values() + oauth_tokens + ["sec-wrong-token-Vb6Nq2Lp"]:
        assert value not in text, f"a secret ({value[:6]}...) appears in the logs"
    for value in PII:
        assert value not in text, f"personal data ({value}) appears in the logs"
    print(f"{len(captured_logs) // 2} log records searched for {len(secret_values()) + len(oauth_tokens) + 1} "
          f"secret values and {len(PII)} personal values")


def _pages(client, customer):
    """(url, text) of every page a superuser can open: admin, OpenAPI, read API, operator endpoints."""
    urls = [url for _name, url in admin_urls(customer)]
    urls += ["/api/schema/", "/api/schema/?format=json", "/api/docs/", "/api/customers/",
             f"/api/customers/{customer.pk}/", "/metrics", "/healthz", "/readyz"]
    for url in urls:
        response = client.get(url)
        if response.status_code == 200:
            body = b"".join(response.streaming_content) if response.streaming else response.content
            yield url, body.decode(errors="replace")


@pytest.fixture
def superuser_client(db):
    superuser = User.objects.create_superuser("pages-root", None, None)
    client = Client()
    client.force_login(superuser)
    client.user = superuser
    return client


def test_no_secret_in_any_page(full_run, superuser_client):
    oauth_tokens, _targets = full_run
    secrets = secret_values() + oauth_tokens + ["sec-wrong-token-Vb6Nq2Lp"]
    pages, leaks = 0, []
    for url, text in _pages(superuser_client, Customer.objects.get()):
        pages += 1
        leaks += [f"secret {value[:6]}... in {url}" for value in secrets if value in text]
    print(f"{pages} pages searched for {len(secrets)} secret values")
    assert pages >= 40
    assert not leaks, leaks


def test_no_api_token_in_any_page(superuser_client, world_with_token):
    api_token = Token.objects.create(user=superuser_client.user).key
    leaks = [url for url, text in _pages(superuser_client, world_with_token) if api_token in text]
    assert not leaks, leaks


@pytest.fixture
def world_with_token(db):
    from canonical.tests.factories import apply, make_event

    apply(make_event({"shop_id": 1, "email": "token-page@example.com"}, source="shop"))
    return Customer.objects.get()


def test_readyz_names_a_failing_dependency_without_its_error_text(client, db, monkeypatch, caplog):
    """/readyz is unauthenticated: an exception's text can carry a URL with credentials or internal hosts."""
    def broker_down():
        raise ConnectionError("cannot reach redis://:sec-redis-pw-Tg5Yh8@redis.internal:6379/0")

    monkeypatch.setattr("custsync_project.ops._check_broker", broker_down)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("error: ConnectionError")
    assert b"sec-redis-pw" not in response.content and b"redis.internal" not in response.content
    # the operator's log names the host, never the password
    assert "redis.internal" in caplog.text and "sec-redis-pw" not in caplog.text
