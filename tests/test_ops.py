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
