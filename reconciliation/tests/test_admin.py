"""The report in the admin, as a steward sees it: runs, discrepancies by class/field, "fix selected"."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client

from targets.models import OutboxMessage
from targets.tests.support import make_customer, make_target

from reconciliation.models import Discrepancy, ReconciliationRun

from .support import deliver, enqueue, reconcile, run_of

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/reconciliation/discrepancy/"


def staff(*codenames):
    user = User.objects.create_user("steward", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="reconciliation",
                                                         codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def report(sandbox):
    cdp = make_target(sandbox, "cdp")
    edited = make_customer(email="a@example.com", first_name="Anna")
    missing = make_customer(email="b@example.com", phone="+4915123456788")
    enqueue(edited)
    deliver(cdp)
    missing_pk = missing.pk
    with sandbox.state.lock:
        sandbox.state.stores["cdp"][edited.pk]["profile"]["first_name"] = "Hand"
        sandbox.state.stores["cdp"][777_777] = {"id": 777_777, "email": "x@example.com"}
    result, _, _ = reconcile("--target", "cdp")
    return {"cdp": cdp, "run_id": run_of(result, "cdp")["run_id"], "edited": edited.pk, "missing": missing_pk}


def test_run_list_and_detail_show_counts_duration_status_and_link(report):
    client = staff("view_reconciliationrun", "view_discrepancy")
    listing = client.get("/admin/reconciliation/reconciliationrun/").content.decode()
    assert "cdp" in listing and "succeeded" in listing and "no" in listing
    detail = client.get(f"/admin/reconciliation/reconciliationrun/{report['run_id']}/change/").content.decode()
    assert f"?run__id__exact={report['run_id']}" in detail and "3 discrepancies" in detail
    assert "edited in target" in detail
    assert client.get("/admin/reconciliation/reconciliationrun/add/").status_code == 403


def test_discrepancies_filter_by_run_class_sub_class_and_field(report):
    client = staff("view_discrepancy")
    base = {"run__id__exact": report["run_id"]}
    page = client.get(CHANGELIST, base).content.decode()
    assert "3 discrepancies" in page or "3 total" in page
    drift = client.get(CHANGELIST, {**base, "klass": "field_drift", "sub_class": "edited_in_target",
                                    "field": "first_name"})
    assert drift.status_code == 200 and drift.context["cl"].result_count == 1
    assert "Anna / Anna / Hand" in drift.content.decode()
    assert client.get(CHANGELIST, {**base, "field": "email"}).context["cl"].result_count == 0
    assert client.get(CHANGELIST, {**base, "klass": "orphan_in_target"}).context["cl"].result_count == 1


def test_fix_selected_needs_the_permission(report):
    client = staff("view_discrepancy")
    ids = [str(pk) for pk in Discrepancy.objects.values_list("pk", flat=True)]
    page = client.get(CHANGELIST)
    assert "fix_selected" not in page.content.decode()
    response = client.post(CHANGELIST, {"action": "fix_selected", "_selected_action": ids, "post": "yes"})
    assert response.status_code in (200, 302)
    assert not Discrepancy.objects.filter(fixed_at__isnull=False).exists()
    assert not OutboxMessage.objects.filter(correlation_id__startswith="reconcile:").exists()


def test_fix_selected_confirms_with_the_count_then_queues_and_converges(report, sandbox):
    client = staff("view_discrepancy", "fix_discrepancy")
    ids = [str(pk) for pk in Discrepancy.objects.values_list("pk", flat=True)]

    confirm = client.post(CHANGELIST, {"action": "fix_selected", "_selected_action": ids})
    body = confirm.content.decode()
    assert confirm.status_code == 200 and '<strong id="fix-count">2</strong> of 3 selected' in body
    assert not Discrepancy.objects.filter(fixed_at__isnull=False).exists()

    done = client.post(CHANGELIST, {"action": "fix_selected", "_selected_action": ids, "post": "yes"}, follow=True)
    assert "Queued fixes for 2 discrepancies (2 outbox messages); 1 skipped." in done.content.decode()
    assert LogEntry.objects.filter(change_message__startswith="fix queued").count() == 2
    deliver(report["cdp"])
    assert sandbox.state.record("cdp", report["edited"])["profile"]["first_name"] == "Anna"
    assert sandbox.state.record("cdp", report["missing"]) is not None

    again = client.post(CHANGELIST, {"action": "fix_selected", "_selected_action": ids, "post": "yes"}, follow=True)
    assert "Queued fixes for 0 discrepancies" in again.content.decode()
    result, _, _ = reconcile("--target", "cdp")
    assert run_of(result, "cdp")["counts"] == {"in_sync": 2, "missing_in_target": 0, "orphan_in_target": 1,
                                               "field_drift": 0}
    assert ReconciliationRun.objects.count() == 2
