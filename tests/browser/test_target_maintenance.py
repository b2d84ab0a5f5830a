"""Support pauses a target for its maintenance window and resumes it, in a real browser."""

import pytest
from django.db import transaction
from selenium.webdriver.support.ui import Select

from canonical.changes import CustomerChange
from targets.models import OutboxMessage, Target
from targets.services import outbox_enqueue, target_pump
from targets.tests.support import make_customer, make_target, sandbox, target_env  # noqa: F401
from tests.admin.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-password-1"


@pytest.fixture(autouse=True)
def no_task_broker(monkeypatch):
    # Kicks after commit would enqueue django-q tasks; these tests deliver in-process instead.
    monkeypatch.setattr("django_q.tasks.async_task", lambda *a, **k: None)


def _run_action(admin_ui, target, action: str, confirm: str):
    admin_ui.open("/admin/targets/target/", "#result_list")
    admin_ui.click(f'input.action-select[value="{target.pk}"]')
    Select(admin_ui.driver.find_element("css selector", "select[name=action]")).select_by_value(action)
    admin_ui.submit_and_wait("button[name=index]", "#confirm-action")
    admin_ui.submit_and_wait(f'form input[type=submit][value="{confirm}"]', "ul.messagelist")


def test_support_pauses_a_target_and_its_changes_arrive_after_resume(admin_ui, sandbox):
    # given: the crm target and a support user
    target = make_target(sandbox, "crm")
    make_user("support", password=PASSWORD)
    admin_ui.login("support", PASSWORD)

    # when: support pauses it from the targets list
    _run_action(admin_ui, target, "pause", "Yes, pause")
    assert "Paused 1 target(s)." in admin_ui.messages()
    admin_ui.open(f"/admin/targets/target/{target.pk}/change/", "#content-main")
    assert "paused since" in admin_ui.visible(".field-delivery_state").text
    assert "by support" in admin_ui.visible(".field-delivery_state").text

    # and: a customer changes during the window
    customer = make_customer()
    with transaction.atomic():
        outbox_enqueue(changes=[CustomerChange(customer.pk, customer.version, "upsert", "evt_window")])
    assert target_pump(target_id=target.pk, budget_seconds=1) == {"skipped": "paused"}
    assert sandbox.state.record("crm", customer.pk) is None

    # then: after resume the change is delivered
    _run_action(admin_ui, target, "resume", "Yes, resume")
    assert "Resumed 1 target(s)." in admin_ui.messages()
    assert target_pump(target_id=target.pk, budget_seconds=2).get("delivered") == 1
    assert sandbox.state.record("crm", customer.pk) is not None
    assert OutboxMessage.objects.get(target=target).status == "delivered"
    assert Target.objects.get(pk=target.pk).paused_at is None
