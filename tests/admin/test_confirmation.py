"""Every confirmation page, one action per app and the buttons of object pages: one template, one helper."""

import re
from pathlib import Path

import pytest
from django.urls import reverse

from reconciliation.models import Discrepancy

pytestmark = pytest.mark.django_db

TEMPLATE = "admin/custsync/action_confirmation.html"
ROOT = Path(__file__).resolve().parents[2]


def _templates(response) -> list[str]:
    return [t.name for t in response.templates if t.name]


def _hidden(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)


def _action(client, changelist, action, pks, **extra):
    return client.post(reverse(changelist), {"action": action, "_selected_action": pks, **extra})


CASES = [
    # (app, role, request, texts on the page)
    ("webhooks", "support",
     lambda c, w: _action(c, "admin:webhooks_inboxevent_changelist", "replay", [w.failed_event.pk]),
     ["Replay 1 failed event?", 'value="Yes, replay 1"']),
    ("targets", "support",
     lambda c, w: _action(c, "admin:targets_deadletter_changelist", "replay", [w.dead_letter.pk]),
     ["Replay 1 dead letter(s)?", "1 message(s) go back to pending"]),
    ("reconciliation", "steward",
     lambda c, w: _action(c, "admin:reconciliation_discrepancy_changelist", "fix_selected", [w.discrepancy.pk]),
     ['<strong id="fix-count">1</strong>', "Each fix queues an upsert"]),
    ("workbench (conflicts)", "steward",
     lambda c, w: _action(c, "admin:canonical_conflict_changelist", "keep_current", [w.conflict.pk]),
     ["Keep current for 1 conflict(s)?", "1 of the selected conflicts are open"]),
    ("workbench (customers)", "support",
     lambda c, w: _action(c, "admin:canonical_customer_changelist", "resend_to_targets", [w.customer.pk]),
     ["Resend customers to targets?", 'value="Yes, resend"']),
]


@pytest.mark.parametrize("app,role,send,texts", CASES, ids=[c[0] for c in CASES])
def test_each_apps_action_confirms_on_the_one_template(world, login, app, role, send, texts):
    response = send(login(role), world)
    html = response.content.decode()
    assert response.status_code == 200
    assert TEMPLATE in _templates(response), _templates(response)
    assert 'id="confirm-action"' in html and "No, take me back" in html
    for text in texts:
        assert text in html, text
    hidden = dict(_hidden(html))
    assert hidden["post"] == "yes" and hidden["action"]  # the same action comes back with post=yes


@pytest.mark.parametrize("url,back,role,text", [
    (lambda w: reverse("admin:webhooks_inboxevent_replay", args=[w.failed_event.pk]),
     lambda w: reverse("admin:webhooks_inboxevent_change", args=[w.failed_event.pk]), "support",
     "Replay 1 failed event?"),
    (lambda w: reverse("admin:canonical_customer_resend", args=[w.customer.pk]),
     lambda w: reverse("admin:canonical_customer_change", args=[w.customer.pk]), "support", "Resend customer"),
], ids=["inbox event page", "customer page"])
def test_object_page_buttons_confirm_on_the_one_template(world, login, url, back, role, text):
    response = login(role).get(url(world))
    html = response.content.decode()
    assert response.status_code == 200 and TEMPLATE in _templates(response)
    assert text in html
    # the form posts back to the button's URL: no action, no selection; "back" leads to the object's page
    names = {name for name, _ in _hidden(html)}
    assert "post" in names and not names & {"action", "_selected_action", "select_across"}
    assert f'<a href="{back(world)}" class="button cancel-link">' in html


def test_skipped_rows_and_select_across_on_the_one_template(world, login):
    # given: one fixable discrepancy and one already fixed, the whole list selected ("select all" in the browser:
    # the rows of the page stay checked and select_across is set)
    Discrepancy.objects.create(run=world.run, customer_id=world.customer.pk, klass="missing_in_target",
                               sub_class="never_delivered", fixed_at=world.run.finished_at)
    client = login("steward")
    changelist = reverse("admin:reconciliation_discrepancy_changelist")
    response = client.post(changelist, {"action": "fix_selected", "_selected_action": [world.discrepancy.pk],
                                        "select_across": "1", "index": "0"})
    html = response.content.decode()
    assert TEMPLATE in _templates(response)
    assert '<strong id="fix-count">1</strong> of 2 selected discrepancies will be fixed.' in html
    assert 'id="skip-note">1 will be skipped (already fixed: 1).' in html
    hidden = [(name, value) for name, value in _hidden(html) if name != "csrfmiddlewaretoken"]
    assert ("select_across", "1") in hidden and ("index", "0") in hidden

    # when: the page's own form is sent back, as the browser does
    form = {}
    for name, value in hidden:
        form.setdefault(name, []).append(value)
    done = client.post(changelist, form, follow=True)

    # then: every matching row was handled, not just the hidden ones
    assert "Queued fixes for 1 discrepancies (1 outbox messages); 1 skipped." in done.content.decode()
    assert Discrepancy.objects.filter(fixed_at__isnull=True).count() == 0


def test_escaped_text_on_the_confirmation_page(world, login):
    world.customer.email = "<script>alert(1)</script>@example.com"
    world.customer.save(update_fields=["email"])
    html = _action(login("support"), "admin:canonical_customer_changelist", "resend_to_targets",
                   [world.customer.pk]).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_no_other_confirmation_template_and_no_hand_built_confirmation():
    names = {p.name for p in ROOT.rglob("*.html") if ".venv" not in p.parts and "node_modules" not in p.parts}
    assert not {n for n in names if "confirmation" in n} - {"action_confirmation.html"}
    for admin_py in ("webhooks/admin.py", "reconciliation/admin.py", "targets/admin.py",
                     "custsync_project/workbench/admin.py"):
        assert "TemplateResponse" not in (ROOT / admin_py).read_text(), admin_py


def test_helper_passes_extra_hidden_inputs(world, rf):
    from django.contrib import admin
    from django.contrib.auth.models import User

    from core.admin import action_confirmation
    from targets.models import DeadLetter

    request = rf.post("/admin/targets/deadletter/")
    request.user = User.objects.create_superuser("helper-root", None, None)
    model_admin = admin.site._registry[DeadLetter]
    response = action_confirmation(model_admin, request, queryset=DeadLetter.objects.all(), action="replay",
                                   title="t", explanation="e", items=["one"], confirm_label="Yes",
                                   extra_inputs={"mode": "<all>"})
    html = response.rendered_content
    assert '<input type="hidden" name="mode" value="&lt;all&gt;">' in html
    assert ("_selected_action", str(world.dead_letter.pk)) in _hidden(html)
