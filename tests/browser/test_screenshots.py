"""Screenshots of the dashboard, a conflict and a reconciliation report (1280x900 PNG).

Written to $CUSTSYNC_SCREENSHOTS_DIR when set (`tests/browser/screenshots.py`
sets it to docs/screenshots), else to a temporary directory, so an ordinary
test run never changes tracked files.
"""

import os
import random
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from canonical.models import Conflict, Customer
from canonical.tests.factories import apply, make_event
from reconciliation.models import Discrepancy, ReconciliationRun
from targets.models import DeliveryAttempt, OutboxMessage
from tests.admin.conftest import make_user
from tests.factories import source_create, target_create
from webhooks.models import InboxEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-password-1"


def _demo_data():
    rng = random.Random(7)
    now = timezone.now()
    sources = [source_create(name) for name in ("shop", "crm", "support", "cmp")]
    apply(make_event({"crm_id": "C-17", "shop_id": 9981, "email": "max.mustermann@example.com", "first_name": "Max",
                      "last_name": "Mustermann"}, source="crm", event_id="evt_crm_17"))
    apply(make_event({"shop_id": 9981, "email": "max@shop-example.com", "first_name": "Maximilian"}, source="shop",
                     minutes=42, event_id="evt_shop_9981"))
    for i in range(2, 8):
        apply(make_event({"crm_id": f"C-{i}", "email": f"person{i}@example.com"}, source="crm"))
        apply(make_event({"crm_id": f"C-{i}", "shop_id": 100 + i, "email": f"p{i}@shop-example.com"}, source="shop",
                         minutes=10 + i))
    events = []
    for hour in range(24):
        base = 30 + int(25 * (1 + (hour % 12) / 6)) + rng.randint(0, 20)
        for n in range(base):
            source = sources[rng.randrange(len(sources))]
            status = "failed" if (hour in (5, 6) and n % 7 == 0) or rng.random() < 0.01 else "processed"
            received = now - timedelta(hours=hour, minutes=rng.randint(0, 59))
            events.append(InboxEvent(source=source, event_id=f"evt_demo_{hour}_{n}", type="customer.upsert",
                                     schema_version=1, occurred_at=received, received_at=received, status=status,
                                     payload={"event_id": f"evt_demo_{hour}_{n}", "data": {}}))
    for n in range(4):
        events.append(InboxEvent(source=sources[0], event_id=f"evt_wait_{n}", type="customer.upsert", schema_version=1,
                                 occurred_at=now, received_at=now - timedelta(seconds=40 + n), status="received",
                                 payload={"data": {}}))
    InboxEvent.objects.bulk_create(events)
    cdp, crm = target_create("cdp"), target_create("crm", kind="crm", base_url="http://127.0.0.1:9/crm")
    customers = list(Customer.objects.all())
    attempts = []
    for index, customer in enumerate(customers):
        for target in (cdp, crm):
            status = "dead" if (target == crm and index % 3 == 0) else ("pending" if index % 4 == 1 else "delivered")
            message = OutboxMessage.objects.create(target=target, customer=customer, version=customer.version,
                                                   status=status, attempts=6 if status == "dead" else 1,
                                                   last_status=503 if status == "dead" else 200,
                                                   next_attempt_at=now)
            attempts.append(DeliveryAttempt(message=message, started_at=now - timedelta(minutes=5 * index),
                                            operation="upsert", version=customer.version,
                                            status_code=503 if status == "dead" else 200,
                                            outcome="dead" if status == "dead" else "delivered", idempotency_key="k"))
    for hour in range(24):
        for n in range(rng.randint(0, 4) + (8 if hour in (5, 6) else 0)):
            attempts.append(DeliveryAttempt(message=message, started_at=now - timedelta(hours=hour, minutes=n),
                                            operation="upsert", version=1, status_code=503, outcome="retry",
                                            idempotency_key="k"))
    DeliveryAttempt.objects.bulk_create(attempts)
    for target, counts in ((cdp, (812, 3, 1, 2)), (crm, (798, 9, 0, 11))):
        run = ReconciliationRun.objects.create(
            target=target, status="succeeded", started_at=now - timedelta(hours=5), finished_at=now - timedelta(hours=5),
            duration_seconds=14.2, records_listed=sum(counts), golden_scanned=sum(counts), trigger="schedule",
            counts=dict(zip(("in_sync", "missing_in_target", "orphan_in_target", "field_drift"), counts)),
            sub_counts={"field_drift": {"edited_in_target": counts[3] - 1, "delivery_behind": 1},
                        "missing_in_target": {"never_delivered": counts[1]}},
        )
        for customer in customers[:3]:
            Discrepancy.objects.create(
                run=run, customer_id=customer.pk, target_record_id=str(customer.pk), klass="field_drift",
                sub_class="edited_in_target", fields=["email"], field_names=",email,",
                values={"email": {"golden": customer.email, "delivered": customer.email,
                                  "target": "edited." + customer.email, "sub_class": "edited_in_target"}},
                golden_version=customer.version, delivered_version=customer.version)
    return Conflict.objects.filter(customer__external_ids__value="C-17").first(), run


def test_screenshots(admin_ui, tmp_path, monkeypatch):
    monkeypatch.setattr("django_q.tasks.async_task", lambda *a, **k: None)
    out = Path(os.environ.get("CUSTSYNC_SCREENSHOTS_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    conflict, run = _demo_data()
    make_user("superuser", password=PASSWORD)
    admin_ui.login("superuser", PASSWORD)

    admin_ui.open("/admin/", "#dash-chart")
    admin_ui.screenshot(out / "dashboard.png")
    admin_ui.open(f"/admin/canonical/conflict/{conflict.pk}/change/", "table.conflict-side-by-side")
    admin_ui.screenshot(out / "conflict.png")
    admin_ui.open(f"/admin/reconciliation/reconciliationrun/{run.pk}/change/", "#content-main")
    admin_ui.screenshot(out / "reconciliation-report.png")
    admin_ui.open(f"/admin/reconciliation/discrepancy/?run__id__exact={run.pk}", "#result_list")
    admin_ui.screenshot(out / "reconciliation-discrepancies.png")
    admin_ui.open("/admin/canonical/customer/", "#result_list")
    admin_ui.click(f'#result_list a[href$="/{conflict.customer_id}/change/"]')
    admin_ui.visible("table.golden-record")
    admin_ui.screenshot(out / "customer.png")
    for name in ("dashboard", "conflict", "reconciliation-report", "reconciliation-discrepancies", "customer"):
        data = (out / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
