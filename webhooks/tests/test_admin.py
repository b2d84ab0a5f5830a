"""The admin as support and data stewards use it."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from webhooks.models import InboxEvent

from .conftest import SHOP_SECRET, sample_event

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:webhooks_inboxevent_changelist")


def _event(source, event_id, *, status="received", data=None, **extra):
    payload = sample_event(event_id=event_id, data=data or {"shop_id": 1})
    return InboxEvent.objects.create(
        source=source, event_id=event_id, type="customer.upsert", schema_version=1,
        occurred_at="2026-01-14T10:12:00Z", payload=payload, status=status, **extra,
    )


@pytest.fixture
def staff(client):
    """A logged-in staff user with view rights on the inbox; `grant` adds more permissions."""
    user = User.objects.create_user("support", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_inboxevent"), Permission.objects.get(codename="view_source"),
    )
    client.force_login(user)

    def grant(codename):
        user.user_permissions.add(Permission.objects.get(codename=codename))

    client.grant = grant
    return client


def test_changelist_lists_and_filters(admin_client, shop, support):
    _event(shop, "evt_a", status="failed")
    _event(support, "evt_b")
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert b"evt_a" in response.content and b"evt_b" in response.content
    response = admin_client.get(CHANGELIST, {"status": "failed"})
    assert b"evt_a" in response.content and b"evt_b" not in response.content
    response = admin_client.get(CHANGELIST, {"source__id__exact": support.pk})
    assert b"evt_b" in response.content and b"evt_a" not in response.content
    response = admin_client.get(CHANGELIST, {"type": "customer.upsert", "received_at__gte": "2000-01-01 00:00:00+00:00"})
    assert response.status_code == 200


def test_search_by_event_id_and_email_v1_and_v2_case_insensitive(admin_client, shop):
    _event(shop, "evt_v1", data={"shop_id": 1, "email": "Person@Example.com "})
    _event(shop, "evt_v2", data={"ids": {"shop": 2}, "contact": {"email": "Other.Person@EXAMPLE.org"}})
    _event(shop, "evt_none", data={"shop_id": 3})

    def found(term):
        content = admin_client.get(CHANGELIST, {"q": term}).content
        return {e for e in ("evt_v1", "evt_v2", "evt_none") if e.encode() in content}

    assert found("evt_v1") == {"evt_v1"}
    assert found("person@example.com") == {"evt_v1"}
    assert found("other.person@example.ORG") == {"evt_v2"}
    assert found("PERSON@") == {"evt_v1", "evt_v2"}
    assert found("nobody@example.com") == set()


def test_detail_shows_payload_escaped_problems_and_error(admin_client, shop):
    event = _event(shop, "evt_x", status="failed", data={"shop_id": 1, "first_name": "<script>alert(1)</script>"},
                   last_error="ValueError: <b>bad</b>",
                   problems=[{"field": "phone", "message": "not valid for region DE", "severity": "warning"}])
    response = admin_client.get(reverse("admin:webhooks_inboxevent_change", args=[event.pk]))
    content = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "&quot;first_name&quot;" in content  # pretty-printed JSON, escaped
    assert "not valid for region DE" in content and "&lt;b&gt;bad&lt;/b&gt;" in content
    assert 'name="status"' not in content  # read-only: no form inputs for fields


def test_inbox_is_read_only_even_for_superusers(admin_client, shop):
    event = _event(shop, "evt_ro")
    assert admin_client.get(reverse("admin:webhooks_inboxevent_add")).status_code == 403
    response = admin_client.post(reverse("admin:webhooks_inboxevent_change", args=[event.pk]), {"status": "processed"})
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.status == "received"
    assert admin_client.post(reverse("admin:webhooks_inboxevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403


def _replay(client, events, **extra):
    return client.post(CHANGELIST, {"action": "replay", "_selected_action": [e.pk for e in events], **extra},
                       follow=True)


def test_replay_needs_the_permission(staff, shop, monkeypatch):
    monkeypatch.setattr("django_q.tasks.async_task", lambda *a, **k: None)
    failed = _event(shop, "evt_f", status="failed")
    response = staff.get(CHANGELIST)
    assert b"Replay selected failed events" not in response.content
    _replay(staff, [failed], post="yes")
    failed.refresh_from_db()
    assert failed.status == "failed"

    staff.grant("replay_inboxevent")
    assert b"Replay selected failed events" in staff.get(CHANGELIST).content
    assert "Replay 1 failed event?" in _replay(staff, [failed]).content.decode()  # asks first, even for one
    response = _replay(staff, [failed], post="yes")
    assert "Replayed 1 failed event(s)." in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == "received"


def test_replay_of_many_asks_first_and_skips_unfailed(admin_client, shop, monkeypatch,
                                                      django_capture_on_commit_callbacks):
    enqueued = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda *a, **k: enqueued.append(a))
    failed = [_event(shop, f"evt_f{i}", status="failed", lease_owner="w", attempts=5) for i in range(3)]
    done = _event(shop, "evt_done", status="processed")
    response = _replay(admin_client, [*failed, done])
    content = response.content.decode()
    assert "Replay 3 failed events?" in content and "1 selected event that has not failed" in content
    assert InboxEvent.objects.filter(status="failed").count() == 3  # nothing changed yet

    with django_capture_on_commit_callbacks(execute=True):
        response = _replay(admin_client, [*failed, done], post="yes")
    content = response.content.decode()
    assert "Replayed 3 failed event(s). 1 selected event(s) had not failed and were left alone." in content
    assert enqueued == [("webhooks.processing.inbox_pump",)]  # one wake-up; the pump claims all three
    assert set(InboxEvent.objects.values_list("status", "lease_owner")) == {("received", ""), ("processed", "")}
    from django.contrib.admin.models import LogEntry
    assert LogEntry.objects.filter(change_message__startswith="Replayed").count() == 3


def test_changelist_query_count_does_not_grow_with_rows(admin_client, shop, django_assert_max_num_queries):
    for i in range(30):
        _event(shop, f"evt_{i}")
    with django_assert_max_num_queries(12):
        assert admin_client.get(CHANGELIST).status_code == 200


def test_sources_show_references_and_whether_set_never_values(admin_client, shop, support, monkeypatch):
    monkeypatch.delenv("SUPPORT_SECRET_OLD")
    response = admin_client.get(reverse("admin:webhooks_source_changelist"))
    content = response.content.decode()
    assert "${WEBHOOK_SECRET}" in content
    assert "WEBHOOK_SECRET: set" in content and "SUPPORT_SECRET_OLD: MISSING" in content
    assert SHOP_SECRET not in content
    detail = admin_client.get(reverse("admin:webhooks_source_change", args=[shop.pk])).content.decode()
    assert "${WEBHOOK_SECRET}" in detail and SHOP_SECRET not in detail


def test_source_admin_refuses_a_literal_secret(admin_client, shop):
    response = admin_client.post(reverse("admin:webhooks_source_change", args=[shop.pk]), {
        "name": "shop", "enabled": "on", "signature_scheme": "hmac-sha256", "secret_refs": '["hunter2-literal"]',
        "schema_versions": "[1]", "event_types": '["customer.upsert"]', "default_region": "DE",
    })
    assert response.status_code == 200
    assert "not an environment reference" in response.content.decode()
    shop.refresh_from_db()
    assert shop.secret_refs == ["${WEBHOOK_SECRET}"]
