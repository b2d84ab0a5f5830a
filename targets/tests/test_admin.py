"""Dead-letter admin: list, replay and discard with confirmation and permissions; read-only screens."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from targets.models import OutboxMessage, Target

from .support import make_customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def dead_letters():
    target = Target.objects.create(name="cdp", kind="cdp", base_url="http://127.0.0.1:9/cdp", auth_kind="bearer",
                                   secret_refs={"token": "${CDP_TOKEN}"})
    messages = []
    for index in range(3):
        customer = make_customer(email=f"d{index}@example.com")
        messages.append(OutboxMessage.objects.create(
            target=target, customer=customer, version=1, status="dead", attempts=6, last_status=422,
            last_error='{"error":"email rejected"}', next_attempt_at=timezone.now()))
    return messages


def staff(*perms):
    user = User.objects.create_user("steward", password="pw-steward-1", is_staff=True)
    for codename in ("view_outboxmessage", "view_deadletter", *perms):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_dead_letter_list_shows_status_error_and_attempts(client, dead_letters):
    client.force_login(staff())
    response = client.get(reverse("admin:targets_deadletter_changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "email rejected" in body and "422" in body
    assert body.count("email rejected") == 3  # one row per dead letter


@pytest.mark.parametrize("action,perm,status", [
    ("replay", "replay_outboxmessage", "pending"),
    ("discard", "discard_outboxmessage", "discarded"),
])
def test_action_confirms_then_acts_with_permission(client, dead_letters, action, perm, status):
    client.force_login(staff(perm))
    url = reverse("admin:targets_deadletter_changelist")
    ids = [str(m.pk) for m in dead_letters[:2]]

    confirm = client.post(url, {"action": action, "_selected_action": ids})
    assert confirm.status_code == 200
    assert "2 message(s)" in confirm.content.decode()
    assert OutboxMessage.objects.filter(status="dead").count() == 3  # nothing happened yet

    done = client.post(url, {"action": action, "_selected_action": ids, "post": "yes"}, follow=True)
    assert OutboxMessage.objects.filter(status=status).count() == 2
    assert OutboxMessage.objects.filter(status="dead").count() == 1
    assert any("2 dead letter(s)" in str(m) for m in done.context["messages"])
    if action == "replay":
        assert set(OutboxMessage.objects.filter(status="pending").values_list("attempts", flat=True)) == {0}


@pytest.mark.parametrize("action", ["replay", "discard"])
def test_action_without_permission_changes_nothing(client, dead_letters, action):
    client.force_login(staff())
    url = reverse("admin:targets_deadletter_changelist")
    client.post(url, {"action": action, "_selected_action": [str(dead_letters[0].pk)], "post": "yes"})
    assert OutboxMessage.objects.filter(status="dead").count() == 3


def test_target_admin_shows_references_never_values(client, dead_letters, monkeypatch):
    monkeypatch.setenv("CDP_TOKEN", "value-that-must-not-show")
    user = User.objects.create_superuser("admin", password="pw-admin-1")
    client.force_login(user)
    target = Target.objects.get(name="cdp")
    body = client.get(reverse("admin:targets_target_change", args=[target.pk])).content.decode()
    assert "${CDP_TOKEN}" in body and "value-that-must-not-show" not in body
    assert client.get(reverse("admin:targets_outboxmessage_changelist") + "?status=dead").status_code == 200
    assert client.get(reverse("admin:targets_deliveryattempt_changelist")).status_code == 200
    assert client.get(reverse("admin:targets_outboxmessage_add")).status_code == 403


def test_actions_leave_an_admin_log_entry_per_message(client, dead_letters):
    from django.contrib.admin.models import LogEntry

    client.force_login(staff("replay_outboxmessage"))
    ids = [str(m.pk) for m in dead_letters[:2]]
    client.post(reverse("admin:targets_deadletter_changelist"), {"action": "replay", "_selected_action": ids,
                                                                 "post": "yes"})
    entries = LogEntry.objects.filter(user__username="steward")
    assert sorted(entries.values_list("object_id", flat=True)) == sorted(ids)
    assert all("Replayed" in e.get_change_message() for e in entries)


def test_stewards_edit_a_target_mapping_without_access_to_the_target(client):
    from django.contrib.auth.models import Group

    from targets.services import target_mappings_ensure_defaults

    target = Target.objects.create(name="crm", kind="crm", base_url="http://127.0.0.1:9/crm", auth_kind="api_key",
                                   secret_refs={"api_key": "${CRM_API_KEY}"})
    target_mappings_ensure_defaults(target=target)
    user = User.objects.create_user("stew", password="pw-stew-1", is_staff=True)
    user.groups.add(Group.objects.get(name="Data stewards"))
    client.force_login(user)
    # the target itself (URL, secret references) stays out of reach
    target_url = reverse("admin:targets_target_change", args=[target.pk])
    assert client.post(target_url, {"name": "crm", "base_url": "http://evil.example/"}).status_code == 403
    mapping = target.field_mappings.get(canonical_field="first_name")
    url = reverse("admin:targets_targetfieldmapping_change", args=[mapping.pk])
    form = {"target": target.pk, "order": mapping.order, "canonical_field": "first_name",
            "target_path": "givenName", "enabled": "on"}
    # an unknown golden-record field is refused with a message naming it
    refused = client.post(url, {**form, "canonical_field": "shoe_size"})
    assert refused.status_code == 200 and "unknown golden-record field" in refused.content.decode()
    # a valid edit is saved
    assert client.post(url, form).status_code == 302
    mapping.refresh_from_db()
    assert mapping.target_path == "givenName"


def _target_form(target, **overrides):
    """The target's change form as the admin posts it (no field mappings on this target)."""
    data = {"name": target.name, "kind": target.kind, "base_url": target.base_url, "enabled": "on",
            "auth_kind": target.auth_kind, "secret_refs": '{"token": "${CDP_TOKEN}"}', "oauth_token_url": "",
            "oauth_client_id": "", "oauth_scope": "", "timeout_seconds": "20", "rate_limit_per_minute": "600",
            "max_retries": "5", "backoff_seconds": "0.5", "dead_letter_queue": "on",
            "field_mappings-TOTAL_FORMS": "0", "field_mappings-INITIAL_FORMS": "0",
            "field_mappings-MIN_NUM_FORMS": "0", "field_mappings-MAX_NUM_FORMS": "1000"}
    return {**data, **overrides}


def test_target_admin_refuses_a_literal_secret_naming_the_field_without_echoing_it(client):
    # given: a target whose token is a reference
    target = Target.objects.create(name="cdp", kind="cdp", base_url="http://127.0.0.1:9/cdp", auth_kind="bearer",
                                   secret_refs={"token": "${CDP_TOKEN}"})
    client.force_login(User.objects.create_superuser("admin", password="pw-admin-1"))
    url = reverse("admin:targets_target_change", args=[target.pk])
    literal = "sk_live_hunter2-literal-value"

    # when: someone types the secret itself instead of a reference
    response = client.post(url, _target_form(target, secret_refs=f'{{"token": "${{CDP_TOKEN}}", "api_key": "{literal}"}}'))

    # then: the form is shown again with an error naming the field and asking for ${VAR}; nothing saved or echoed
    body = response.content.decode()
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["secret_refs"]
    assert len(errors) == 1 and "api_key" in errors[0] and "${VAR}" in errors[0]
    assert "secret_refs: api_key must be a ${VAR} reference" in body
    assert literal not in body
    target.refresh_from_db()
    assert target.secret_refs == {"token": "${CDP_TOKEN}"}

    # and: references are saved as before
    assert client.post(url, _target_form(target, secret_refs='{"token": "${CDP_TOKEN_NEW}"}')).status_code == 302
    target.refresh_from_db()
    assert target.secret_refs == {"token": "${CDP_TOKEN_NEW}"}


def test_reenabling_a_target_in_the_admin_offers_a_resync(client):
    # given: a disabled target
    target = Target.objects.create(name="cdp", kind="cdp", base_url="http://127.0.0.1:9/cdp", auth_kind="bearer",
                                   secret_refs={"token": "${CDP_TOKEN}"}, enabled=False)
    client.force_login(User.objects.create_superuser("admin", password="pw-admin-1"))
    # when: it is enabled again on its page
    response = client.post(reverse("admin:targets_target_change", args=[target.pk]), _target_form(target),
                           follow=True)
    # then: the admin says it missed changes and how to resync it
    text = " ".join(str(m) for m in response.context["messages"])
    assert "missed every change made while it was disabled" in text and "Resync selected targets" in text
