"""Every admin page and action, as every role: generated from two tables (NetBox style).

Pages: GET as each role -> 200 with the permission, 403 without.
Actions: POST as each role -> the effect happens with the permission and
nothing happens without it (403, or Django's "no action selected" redirect
when the action is not offered to the user, or the list again when the user has no action at all).
Server-side, never just a hidden button.
"""

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from canonical.models import Conflict, Customer, SourcePriorityRule
from reconciliation.models import Discrepancy
from targets.models import OutboxMessage, Target, TargetResync
from webhooks.models import InboxEvent

from .conftest import ROLES

pytestmark = pytest.mark.django_db

ALL, NONE = set(ROLES) - {"nobody"}, set()
STEWARD_ONLY, SUPPORT_ONLY = {"superuser", "steward"}, {"superuser", "support"}

# (name, url builder, roles that get 200)
PAGES = [
    ("index", lambda w: reverse("admin:index"), ALL | {"nobody"}),
    ("customers", lambda w: reverse("admin:canonical_customer_changelist"), ALL),
    ("customer", lambda w: reverse("admin:canonical_customer_change", args=[w.customer.pk]), ALL),
    ("customer resend confirmation", lambda w: reverse("admin:canonical_customer_resend", args=[w.customer.pk]),
     SUPPORT_ONLY),
    ("conflicts", lambda w: reverse("admin:canonical_conflict_changelist"), STEWARD_ONLY),
    ("conflict", lambda w: reverse("admin:canonical_conflict_change", args=[w.conflict.pk]), STEWARD_ONLY),
    ("field rules", lambda w: reverse("admin:canonical_sourcepriorityrule_changelist"), STEWARD_ONLY),
    ("field rule", lambda w: reverse("admin:canonical_sourcepriorityrule_change",
                                     args=[SourcePriorityRule.objects.get(field="email").pk]), STEWARD_ONLY),
    ("merge log", lambda w: reverse("admin:canonical_mergelog_changelist"), ALL),
    ("inbox", lambda w: reverse("admin:webhooks_inboxevent_changelist"), ALL),
    ("inbox event", lambda w: reverse("admin:webhooks_inboxevent_change", args=[w.failed_event.pk]), ALL),
    ("inbox replay confirmation", lambda w: reverse("admin:webhooks_inboxevent_replay", args=[w.failed_event.pk]),
     SUPPORT_ONLY),
    ("sources", lambda w: reverse("admin:webhooks_source_changelist"), ALL),
    ("outbox", lambda w: reverse("admin:targets_outboxmessage_changelist"), ALL),
    ("dead letters", lambda w: reverse("admin:targets_deadletter_changelist"), ALL),
    ("delivery attempts", lambda w: reverse("admin:targets_deliveryattempt_changelist"), ALL),
    ("targets", lambda w: reverse("admin:targets_target_changelist"), ALL),
    ("target", lambda w: reverse("admin:targets_target_change", args=[w.target.pk]), ALL),
    ("resyncs", lambda w: reverse("admin:targets_targetresync_changelist"), SUPPORT_ONLY),
    ("reconciliation runs", lambda w: reverse("admin:reconciliation_reconciliationrun_changelist"), STEWARD_ONLY),
    ("reconciliation run", lambda w: reverse("admin:reconciliation_reconciliationrun_change", args=[w.run.pk]),
     STEWARD_ONLY),
    ("discrepancies", lambda w: reverse("admin:reconciliation_discrepancy_changelist"), STEWARD_ONLY),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name,url,allowed", PAGES, ids=[p[0] for p in PAGES])
def test_page(world, login, role, name, url, allowed):
    response = login(role).get(url(world))
    assert response.status_code == (200 if role in allowed else 403), f"{name} as {role}"


def _changelist_action(changelist, action, pks):
    return lambda client: client.post(reverse(changelist), {"action": action, "_selected_action": pks, "post": "yes"})


def _conflict_status(w):
    w.conflict.refresh_from_db()
    return w.conflict.status


# (name, request(client, world), effect(world) -> bool, roles with the permission)
ACTIONS = [
    ("conflict accept (action)",
     lambda c, w: _changelist_action("admin:canonical_conflict_changelist", "accept_incoming", [w.conflict.pk])(c),
     lambda w: _conflict_status(w) == "accepted_incoming"
     and Customer.objects.get(pk=w.customer.pk).email == "shop@example.com", STEWARD_ONLY),
    ("conflict keep (action)",
     lambda c, w: _changelist_action("admin:canonical_conflict_changelist", "keep_current", [w.conflict.pk])(c),
     lambda w: _conflict_status(w) == "kept_current", STEWARD_ONLY),
    ("conflict accept (button)",
     lambda c, w: c.post(reverse("admin:canonical_conflict_resolve", args=[w.conflict.pk, "accept_incoming"])),
     lambda w: _conflict_status(w) == "accepted_incoming", STEWARD_ONLY),
    ("conflict keep (button)",
     lambda c, w: c.post(reverse("admin:canonical_conflict_resolve", args=[w.conflict.pk, "keep_current"])),
     lambda w: _conflict_status(w) == "kept_current", STEWARD_ONLY),
    ("field rule edit",
     lambda c, w: c.post(reverse("admin:canonical_sourcepriorityrule_change",
                                 args=[SourcePriorityRule.objects.get(field="email").pk]),
                         {"strategy": "source_priority", "sources": "shop, crm"}),
     lambda w: SourcePriorityRule.objects.get(field="email").sources == ["shop", "crm"], STEWARD_ONLY),
    ("customer resend (action)",
     lambda c, w: _changelist_action("admin:canonical_customer_changelist", "resend_to_targets",
                                     [w.customer.pk])(c),
     lambda w: OutboxMessage.objects.filter(customer=w.customer, status="pending", force_send=True).exists(),
     SUPPORT_ONLY),
    ("customer resend (button)",
     lambda c, w: c.post(reverse("admin:canonical_customer_resend", args=[w.customer.pk]), {"post": "yes"}),
     lambda w: OutboxMessage.objects.filter(customer=w.customer, status="pending", force_send=True).exists(),
     SUPPORT_ONLY),
    ("inbox replay (action)",
     lambda c, w: _changelist_action("admin:webhooks_inboxevent_changelist", "replay", [w.failed_event.pk])(c),
     lambda w: InboxEvent.objects.get(pk=w.failed_event.pk).status == "received", SUPPORT_ONLY),
    ("inbox replay (button)",
     lambda c, w: c.post(reverse("admin:webhooks_inboxevent_replay", args=[w.failed_event.pk]), {"post": "yes"}),
     lambda w: InboxEvent.objects.get(pk=w.failed_event.pk).status == "received", SUPPORT_ONLY),
    ("dead letter replay",
     lambda c, w: _changelist_action("admin:targets_deadletter_changelist", "replay", [w.dead_letter.pk])(c),
     lambda w: OutboxMessage.objects.get(pk=w.dead_letter.pk).status == "pending", SUPPORT_ONLY),
    ("dead letter discard",
     lambda c, w: _changelist_action("admin:targets_deadletter_changelist", "discard", [w.dead_letter.pk])(c),
     lambda w: OutboxMessage.objects.get(pk=w.dead_letter.pk).status == "discarded", SUPPORT_ONLY),
    ("target pause",
     lambda c, w: _changelist_action("admin:targets_target_changelist", "pause", [w.target.pk])(c),
     lambda w: Target.objects.get(pk=w.target.pk).paused_at is not None, SUPPORT_ONLY),
    ("target resume",
     lambda c, w: (Target.objects.filter(pk=w.target.pk).update(paused_at="2026-01-01T00:00:00Z", paused_by="x"),
                   _changelist_action("admin:targets_target_changelist", "resume", [w.target.pk])(c))[1],
     lambda w: Target.objects.get(pk=w.target.pk).paused_at is None
     and LogEntry.objects.filter(object_id=str(w.target.pk), change_message="Resumed.").exists(), SUPPORT_ONLY),
    ("target resync",
     lambda c, w: _changelist_action("admin:targets_target_changelist", "resync", [w.target.pk])(c),
     lambda w: TargetResync.objects.filter(target=w.target).exists(), SUPPORT_ONLY),
    ("reconciliation fix",
     lambda c, w: _changelist_action("admin:reconciliation_discrepancy_changelist", "fix_selected",
                                     [w.discrepancy.pk])(c),
     lambda w: Discrepancy.objects.get(pk=w.discrepancy.pk).fixed_at is not None, STEWARD_ONLY),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name,send,effect,allowed", ACTIONS, ids=[a[0] for a in ACTIONS])
def test_action(world, login, role, name, send, effect, allowed):
    assert not effect(world), f"{name}: effect before the request"
    response = send(login(role), world)
    if role in allowed:
        assert response.status_code in (200, 302), f"{name} as {role}: {response.status_code}"
        assert effect(world), f"{name} as {role}: no effect"
    else:
        # 403, or the action is not offered: Django re-shows the list (200) or redirects (302).
        assert response.status_code in (200, 302, 403), f"{name} as {role}: {response.status_code}"
        assert b'id="confirm-action"' not in response.content
        assert not effect(world), f"{name} as {role}: effect without the permission"


@pytest.mark.parametrize("name,send,effect,allowed", ACTIONS, ids=[a[0] for a in ACTIONS])
def test_action_refused_without_csrf_token(world, login, name, send, effect, allowed):
    """CSRF is enforced on every action and button (a real browser-like client)."""
    client = login("superuser", csrf=True)
    response = send(client, world)
    assert response.status_code == 403
    assert not effect(world)


def test_action_with_csrf_token_works(world, login):
    client = login("steward", csrf=True)
    url = reverse("admin:canonical_conflict_change", args=[world.conflict.pk])
    page = client.get(url)
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else client.cookies["csrftoken"].value
    response = client.post(reverse("admin:canonical_conflict_resolve", args=[world.conflict.pk, "keep_current"]),
                           {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert _conflict_status(world) == "kept_current"


def test_conflict_buttons_and_links_are_not_shown_without_permission(world, login):
    steward = login("steward").get(reverse("admin:canonical_conflict_change", args=[world.conflict.pk]))
    assert b'id="accept-incoming"' in steward.content and b'id="keep-current"' in steward.content
    support_customer = login("support").get(reverse("admin:canonical_customer_change", args=[world.customer.pk]))
    assert b"Resend to targets" in support_customer.content
    steward_customer = login("steward").get(reverse("admin:canonical_customer_change", args=[world.customer.pk]))
    assert b"Resend to targets" not in steward_customer.content


def test_actions_write_log_entries_with_the_user(world, login):
    _changelist_action("admin:canonical_conflict_changelist", "keep_current", [world.conflict.pk])(login("steward"))
    entry = LogEntry.objects.get(object_id=str(world.conflict.pk), content_type__model="conflict")
    assert entry.user.username == "steward" and "keep current" in entry.get_change_message()
    conflict = Conflict.objects.get(pk=world.conflict.pk)
    assert conflict.resolved_by.username == "steward" and conflict.resolved_at is not None
