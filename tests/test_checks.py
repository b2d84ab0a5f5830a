"""System checks on settings (custsync_project/checks.py), and `manage.py check` before migrate."""

import os
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from custsync_project import checks
from targets.services import PUMP_BUDGET_SECONDS as TARGET_PUMP_BUDGET_SECONDS


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def cluster(**main) -> dict:
    """The project's Q_CLUSTER with `main` keys changed; pass ALT_CLUSTERS to replace the alt entries."""
    conf = {**settings.Q_CLUSTER, "sync": False, **main}
    conf.setdefault("ALT_CLUSTERS", settings.Q_CLUSTER["ALT_CLUSTERS"])
    return conf


# --- E001: retry must exceed timeout ------------------------------------------------

def test_retry_not_above_timeout_is_an_error_naming_the_cluster():
    with override_settings(Q_CLUSTER=cluster(timeout=60, retry=60)):
        messages = checks.check_q_retry_exceeds_timeout()

    # The delivery cluster inherits both values from the main one.
    assert ids(messages) == ["custsync_project.E001", "custsync_project.E001"]
    assert "'custsync'" in messages[0].msg and "'custsync-delivery'" in messages[1].msg


def test_an_alt_cluster_with_its_own_short_retry_is_reported_alone():
    alt = {settings.DELIVERY_CLUSTER: {"workers": 2, "timeout": 90, "retry": 80}}
    with override_settings(Q_CLUSTER=cluster(timeout=60, retry=180, ALT_CLUSTERS=alt)):
        messages = checks.check_q_retry_exceeds_timeout()

    assert ids(messages) == ["custsync_project.E001"]
    assert "'custsync-delivery'" in messages[0].msg and "80 s" in messages[0].msg


def test_project_defaults_and_sync_mode_pass():
    assert checks.check_q_retry_exceeds_timeout() == []
    with override_settings(Q_CLUSTER=cluster(timeout=60, retry=30, sync=True)):
        assert checks.check_q_retry_exceeds_timeout() == []


# --- W001 / W002: pump budgets below the cluster timeout --------------------------

@override_settings(INBOX_PUMP_BUDGET_SECONDS=30.0)
def test_inbox_pump_budget_not_below_timeout_is_a_warning():
    with override_settings(Q_CLUSTER=cluster(timeout=30, retry=40)):
        messages = checks.check_pump_budgets()

    assert ids(messages) == ["custsync_project.W001"]
    assert "INBOX_PUMP_BUDGET_SECONDS" in messages[0].msg


def test_delivery_timeout_not_above_the_delivery_pump_budget_is_a_warning():
    timeout = int(TARGET_PUMP_BUDGET_SECONDS)
    with override_settings(Q_CLUSTER=cluster(timeout=timeout, retry=timeout * 3), INBOX_PUMP_BUDGET_SECONDS=5.0):
        messages = checks.check_pump_budgets()

    assert ids(messages) == ["custsync_project.W002"]
    assert "'custsync-delivery'" in messages[0].msg


def test_default_budgets_pass():
    assert checks.check_pump_budgets() == []


# --- E002 / W003: inbox lease and attempts ----------------------------------------

@pytest.mark.parametrize("lease", [0, -5])
def test_inbox_lease_below_one_second_is_an_error(lease):
    with override_settings(INBOX_LEASE_SECONDS=lease):
        messages = checks.check_inbox_settings()

    assert ids(messages) == ["custsync_project.E002"]
    assert "INBOX_LEASE_SECONDS" in messages[0].msg


def test_inbox_max_attempts_below_one_is_a_warning():
    with override_settings(INBOX_MAX_ATTEMPTS=0):
        messages = checks.check_inbox_settings()

    assert ids(messages) == ["custsync_project.W003"]
    assert "INBOX_MAX_ATTEMPTS" in messages[0].msg


def test_default_inbox_settings_pass():
    assert checks.check_inbox_settings() == []


# --- E003: webhook timestamp tolerance --------------------------------------------

@pytest.mark.parametrize("tolerance", [0, -1])
def test_tolerance_below_one_second_is_an_error(tolerance):
    with override_settings(WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS=tolerance):
        messages = checks.check_webhook_tolerance()

    assert ids(messages) == ["custsync_project.E003"]
    assert "WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS" in messages[0].msg


def test_contract_tolerance_passes():
    assert checks.check_webhook_tolerance() == []


# --- the command ----------------------------------------------------------------------

@pytest.mark.django_db
def test_manage_py_check_fails_on_a_settings_error():
    stderr = StringIO()
    with override_settings(INBOX_LEASE_SECONDS=0), pytest.raises(SystemCheckError) as raised:
        call_command("check", stdout=StringIO(), stderr=stderr)

    assert "custsync_project.E002" in str(raised.value)


def test_manage_py_check_before_migrate_reports_no_issue(tmp_path):
    """A fresh database without tables: the checks that read sources and targets skip quietly."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
