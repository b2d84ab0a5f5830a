"""Admin as a steward sees it: customers with provenance, conflicts and their actions, rules."""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from canonical.models import Conflict, Customer, SourcePriorityRule

from .factories import apply, make_event

pytestmark = pytest.mark.django_db


def staff(*codenames):
    user = User.objects.create_user("steward", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="canonical", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def conflict():
    apply(make_event({"crm_id": "C-1", "shop_id": 1, "email": "crm@example.com"}, source="crm", event_id="evt_crm"))
    apply(make_event({"shop_id": 1, "email": "shop@example.com"}, source="shop", minutes=5))
    return Conflict.objects.get(status="open")


def test_customer_page_shows_provenance_and_search(conflict):
    client = staff("view_customer")
    customer = Customer.objects.get()
    page = client.get(f"/admin/canonical/customer/{customer.pk}/change/").content.decode()
    assert "evt_crm" in page and "C-1" in page
    listing = client.get("/admin/canonical/customer/", {"q": "C-1"}).content.decode()
    assert "crm@example.com" in listing
    assert client.get("/admin/canonical/customer/add/").status_code == 403


def test_conflicts_open_by_default(conflict):
    client = staff("view_conflict")
    assert "shop@example.com" in client.get("/admin/canonical/conflict/").content.decode()
    Conflict.objects.update(status="kept_current")
    assert "shop@example.com" not in client.get("/admin/canonical/conflict/").content.decode()
    assert "shop@example.com" in client.get("/admin/canonical/conflict/", {"status": "all"}).content.decode()


def test_accept_action_needs_permission(conflict):
    data = {"action": "accept_incoming", "_selected_action": [conflict.pk]}
    without = staff("view_conflict")
    without.post("/admin/canonical/conflict/", data)
    assert Customer.objects.get().email == "crm@example.com"

    User.objects.all().delete()
    allowed = staff("view_conflict", "resolve_conflict")
    assert "Accept incoming for 1 conflict(s)?" in allowed.post("/admin/canonical/conflict/", data).content.decode()
    response = allowed.post("/admin/canonical/conflict/", {**data, "post": "yes"}, follow=True)
    assert "1 conflict(s) resolved" in response.content.decode()
    assert Customer.objects.get().email == "shop@example.com"
    conflict.refresh_from_db()
    assert conflict.status == "accepted_incoming"


def test_rule_edit_validates_sources():
    client = staff("view_sourcepriorityrule", "change_sourcepriorityrule")
    rule = SourcePriorityRule.objects.get(field="email")
    url = f"/admin/canonical/sourcepriorityrule/{rule.pk}/change/"
    bad = client.post(url, {"field": "email", "strategy": "source_priority", "sources": "crm, crm"})
    assert "a source may appear only once" in bad.content.decode()
    client.post(url, {"field": "email", "strategy": "last_write_wins", "sources": "shop, crm"})
    rule.refresh_from_db()
    assert (rule.strategy, rule.sources) == ("last_write_wins", ["shop", "crm"])
