"""The main admin flows in a real browser (headless Debian chromium + Selenium, live_server).

- a data steward logs in, reorders a field rule's sources (with the preview), resolves a conflict;
- support replays a dead letter, delivery runs (in-process, against the sandbox targets), and the
  outbox page then shows it delivered;
- support replays a failed inbox event from its page.
"""

import pytest
from django.utils import timezone

from canonical.models import Conflict, Customer, SourcePriorityRule
from canonical.tests.factories import apply, make_event
from targets.models import OutboxMessage
from targets.services import target_pump
from targets.tests.support import make_customer, make_target, sandbox, target_env  # noqa: F401
from tests.admin.conftest import make_user
from tests.factories import inbox_event_create, source_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-password-1"


@pytest.fixture(autouse=True)
def no_task_broker(monkeypatch):
    # Kicks after commit would enqueue django-q tasks; these tests deliver in-process instead.
    monkeypatch.setattr("django_q.tasks.async_task", lambda *a, **k: None)


def test_steward_reorders_a_rule_with_preview_and_resolves_a_conflict(admin_ui):
    # given: the CRM's email wins over the shop's, which raised a conflict
    apply(make_event({"crm_id": "C-1", "shop_id": 1, "email": "crm@example.com"}, source="crm"))
    apply(make_event({"shop_id": 1, "email": "shop@example.com"}, source="shop", minutes=5))
    conflict = Conflict.objects.get(status="open")
    rule = SourcePriorityRule.objects.get(field="email")
    make_user("steward", password=PASSWORD)

    admin_ui.login("steward", PASSWORD)
    admin_ui.visible("#dash-conflicts")

    # when: shop first, crm second, with a preview before saving
    admin_ui.open(f"/admin/canonical/sourcepriorityrule/{rule.pk}/change/", "table.source-order")
    for source, position in (("shop", "1"), ("crm", "2"), ("support", "3")):
        field = admin_ui.driver.find_element("css selector", f'tr[data-source="{source}"] input[type=number]')
        field.clear()
        field.send_keys(position)
    preview = admin_ui.submit_and_wait("#preview-button", ".rule-preview")
    assert "would flip the email of 1 customer" in " ".join(preview.text.split())
    rule.refresh_from_db()
    assert rule.sources == ["crm", "shop", "support"]  # a preview saves nothing
    admin_ui.submit_and_wait("input[name=_save]", "ul.messagelist")
    assert "was changed successfully" in admin_ui.messages()
    rule.refresh_from_db()
    assert rule.sources == ["shop", "crm", "support"]

    # and: the conflict, side by side, accepted with the button
    admin_ui.open("/admin/canonical/conflict/", "#result_list")
    admin_ui.click(f'#result_list a[href$="/{conflict.pk}/change/"]')
    table = admin_ui.visible("table.conflict-side-by-side")
    assert "crm@example.com" in table.text and "shop@example.com" in table.text
    admin_ui.submit_and_wait("#accept-incoming", "ul.messagelist")
    assert "1 conflict(s) resolved (accept incoming)." in admin_ui.messages()

    # then
    conflict.refresh_from_db()
    assert conflict.status == "accepted_incoming" and conflict.resolved_by.username == "steward"
    assert Customer.objects.get().email == "shop@example.com"


def test_support_replays_a_dead_letter_and_sees_it_delivered(admin_ui, sandbox):  # noqa: F811
    # given: a message the cdp refused earlier, now in the dead-letter queue
    target = make_target(sandbox, "cdp")
    customer = make_customer(external_ids={"shop": "9981"})
    dead = OutboxMessage.objects.create(target=target, customer=customer, version=customer.version, status="dead",
                                        attempts=6, last_status=503, last_error="service unavailable",
                                        next_attempt_at=timezone.now())
    make_user("support", password=PASSWORD)
    admin_ui.login("support", PASSWORD)

    # when: select it, run "Replay", confirm
    admin_ui.open("/admin/targets/deadletter/", "#result_list")
    admin_ui.click(f'input.action-select[value="{dead.pk}"]')
    from selenium.webdriver.support.ui import Select

    Select(admin_ui.driver.find_element("css selector", "select[name=action]")).select_by_value("replay")
    admin_ui.submit_and_wait("button[name=index]", "form input[type=submit]")
    assert "Replay 1 dead letter(s)?" in admin_ui.driver.page_source
    admin_ui.submit_and_wait('form input[type=submit][value="Yes, replay"]', "ul.messagelist")
    assert "Replayed 1 dead letter(s)." in admin_ui.messages()

    # and: the worker delivers it (in-process here)
    stats = target_pump(target_id=target.pk, budget_seconds=5)
    assert stats.get("delivered") == 1, stats

    # then: the outbox page says delivered, and the sandbox cdp holds the record
    admin_ui.open(f"/admin/targets/outboxmessage/{dead.pk}/change/", "#content-main")
    assert "Delivered" in admin_ui.visible(".field-status").text
    assert sandbox.state.record("cdp", customer.pk) is not None


def test_support_replays_a_failed_inbox_event_from_its_page(admin_ui):
    failed = inbox_event_create(source=source_create("shop"), data={"shop_id": 5}, event_id="evt_failed")
    failed.status, failed.last_error = "failed", "MappingError: bad"
    failed.save()
    make_user("support", password=PASSWORD)
    admin_ui.login("support", PASSWORD)
    admin_ui.open(f"/admin/webhooks/inboxevent/{failed.pk}/change/", "#content-main")
    admin_ui.click("a.replay-link")
    admin_ui.visible("#confirm-action")
    assert "Replay 1 failed event?" in admin_ui.driver.page_source
    admin_ui.submit_and_wait("#confirm-action", "ul.messagelist")
    assert "Replayed 1 failed event(s)." in admin_ui.messages()
    failed.refresh_from_db()
    assert failed.status == "received"
