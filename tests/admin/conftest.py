"""A small but complete world for admin tests, and one logged-in client per role."""

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from canonical.models import Conflict, Customer
from canonical.tests.factories import apply, make_event
from custsync_project.roles import STEWARDS, SUPPORT
from reconciliation.models import Discrepancy, ReconciliationRun
from targets.models import DeliveryAttempt, OutboxMessage
from tests.factories import dead_letter_create, inbox_event_create, source_create, target_create

ROLES = ("superuser", "steward", "support", "nobody")


@dataclass
class World:
    customer: Customer
    conflict: Conflict
    failed_event: object
    dead_letter: OutboxMessage
    discrepancy: Discrepancy
    run: ReconciliationRun
    target: object


@pytest.fixture
def world(db, monkeypatch):
    # Kicks enqueue django-q tasks after commit; the tests look at rows, not at a worker.
    monkeypatch.setattr("django_q.tasks.async_task", lambda *a, **k: None)
    shop, crm = source_create("shop"), source_create("crm")
    apply(make_event({"crm_id": "C-1", "shop_id": 1, "email": "crm@example.com", "first_name": "Max"},
                     source="crm", event_id="evt_crm"))
    apply(make_event({"shop_id": 1, "email": "shop@example.com"}, source="shop", minutes=5, event_id="evt_shop"))
    customer = Customer.objects.get()
    conflict = Conflict.objects.get(status="open")
    inbox_event_create(source=crm, data={"crm_id": "C-1"}, event_id="evt_crm")
    failed = inbox_event_create(source=shop, data={"shop_id": 2, "first_name": "<b>bold</b>"}, event_id="evt_bad")
    failed.status, failed.last_error = "failed", "MappingError: <script>x</script>"
    failed.save()
    target = target_create("cdp")
    dead = dead_letter_create(target=target, customer=customer)
    DeliveryAttempt.objects.create(message=dead, started_at=timezone.now() - timedelta(minutes=10),
                                   operation="upsert", version=customer.version, status_code=503, outcome="retry",
                                   idempotency_key="k1")
    now = timezone.now()
    run = ReconciliationRun.objects.create(
        target=target, status="succeeded", started_at=now - timedelta(minutes=3), finished_at=now,
        counts={"in_sync": 0, "missing_in_target": 1, "orphan_in_target": 0, "field_drift": 0},
    )
    discrepancy = Discrepancy.objects.create(run=run, customer_id=customer.pk, klass="missing_in_target",
                                             sub_class="never_delivered", golden_version=customer.version)
    return World(customer=customer, conflict=conflict, failed_event=failed, dead_letter=dead,
                 discrepancy=discrepancy, run=run, target=target)


def make_user(role: str, *, password: str | None = None) -> User:
    username = role if not User.objects.filter(username=role).exists() else f"{role}{User.objects.count()}"
    if role == "superuser":
        return User.objects.create_superuser(username, f"{username}@example.com", password)
    user = User.objects.create_user(username, password=password, is_staff=True)
    group = {"steward": STEWARDS, "support": SUPPORT}.get(role)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def login(db):
    """login(role, csrf=False) -> a Client logged in as a fresh user of that role."""
    def _login(role: str, *, csrf: bool = False) -> Client:
        client = Client(enforce_csrf_checks=csrf)
        client.force_login(make_user(role))
        return client
    return _login
