"""Operator endpoints, structured logs and schedules, as an operator observes them."""

import json
import logging

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from core.logging import CorrelationFilter, JsonFormatter, correlation


def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_every_check(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_metrics_exposes_database_gauges_and_counters(client):
    from core import metrics

    metrics.webhook_received(source="shop", outcome="accepted")
    body = client.get("/metrics").content.decode()
    assert 'custsync_webhook_events_received_total{outcome="accepted",source="shop"}' in body
    assert "custsync_inbox_lag_seconds 0.0" in body
    assert 'custsync_inbox_backlog{status="received"} 0.0' in body


@pytest.mark.django_db
def test_metrics_export_target_up_oldest_pending_stalled_and_probes(client):
    import re
    from datetime import timedelta

    from django.utils import timezone

    from canonical.models import Customer
    from core import metrics
    from targets.models import OutboxMessage, TargetRuntime
    from tests.factories import target_create

    target_create("cdp")
    crm = target_create("crm", kind="crm", base_url="http://127.0.0.1:9/crm")
    TargetRuntime.objects.update_or_create(target=crm, defaults=dict(health="down", down_since=timezone.now()))
    customer = Customer.objects.create(version=1, email="m@example.com")
    OutboxMessage.objects.create(target=crm, customer=customer, version=1,
                                 next_attempt_at=timezone.now() - timedelta(minutes=15))
    OutboxMessage.objects.filter(target=crm).update(created_at=timezone.now() - timedelta(minutes=20))
    TargetRuntime.objects.filter(target=crm).update(last_attempt_at=timezone.now() - timedelta(minutes=12))
    metrics.target_probed(target="crm", outcome="failed")

    body = client.get("/metrics").content.decode()

    assert 'custsync_target_up{target="cdp"} 1.0' in body and 'custsync_target_up{target="crm"} 0.0' in body
    oldest = float(re.search(r'custsync_outbox_oldest_pending_seconds\{target="crm"\} (\S+)', body).group(1))
    assert 1195 <= oldest <= 1260
    assert 'custsync_outbox_oldest_pending_seconds{target="cdp"} 0.0' in body
    stalled = float(re.search(r'custsync_outbox_stalled_seconds\{target="crm"\} (\S+)', body).group(1))
    assert 715 <= stalled <= 780  # due for 15 min, last attempt 12 min ago
    assert re.search(r'custsync_target_probes_total\{outcome="failed",target="crm"\} [1-9]', body)


def test_json_log_lines_carry_the_correlation_id():
    record = logging.LogRecord("custsync.test", logging.INFO, __file__, 1, "processed %s", ("x",), None)
    record.duration_ms = 3.5
    with correlation("evt_123"):
        CorrelationFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["correlation_id"] == "evt_123"
    assert line["message"] == "processed x"
    assert line["duration_ms"] == 3.5
    assert line["level"] == "INFO"


@pytest.mark.django_db
def test_setup_schedules_is_idempotent():
    call_command("setup_schedules")
    first = list(Schedule.objects.values_list("name", "func", "schedule_type"))
    call_command("setup_schedules")
    assert list(Schedule.objects.values_list("name", "func", "schedule_type")) == first
    assert len(first) == len({name for name, _, _ in first}) >= 1


def test_deploy_check_is_clean_with_the_production_settings():
    """`check --deploy` passes once the documented TLS-at-the-proxy variables are set."""
    import os
    import subprocess
    import sys

    from django.conf import settings as django_settings

    env = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SECRET_KEY": "k" * 20 + "-production-key-for-the-check-only-0123456789",
        "DEBUG": "false", "ALLOWED_HOSTS": "custsync.example.com",
        "SECURE_SSL_REDIRECT": "true", "SECURE_HSTS_SECONDS": "31536000", "SECURE_HSTS_PRELOAD": "true",
        "SECURE_COOKIES": "true", "DATABASE_URL": "sqlite:////tmp/custsync-deploy-check.sqlite3",
    }
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
