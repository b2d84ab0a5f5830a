"""What the pages show: dashboard, customer page, conflict flow, rule editing with preview, replay confirmations."""

import re

import pytest
from django.urls import reverse

from canonical.models import Conflict, SourcePriorityRule
from canonical.rule_preview import rule_change_preview
from canonical.tests.factories import apply, make_event

pytestmark = pytest.mark.django_db


def _links(html: str) -> list[str]:
    return [href.replace("&amp;", "&") for href in re.findall(r'href="(/admin/[^"]*)"', html)]


def test_dashboard_numbers_and_links_for_a_superuser(world, login):
    client = login("superuser")
    html = client.get(reverse("admin:index")).content.decode()
    for marker in ("dash-inbox", "dash-outbox", "dash-conflicts", "dash-reconciliation", "dash-chart", "<svg"):
        assert marker in html
    assert re.search(r'id="dash-inbox-failed">1 failed<', html)
    assert re.search(r'id="dash-dead"[^>]*>1<', html)
    assert re.search(r'id="dash-retries">1 retries<', html)
    assert re.search(r'id="dash-open-conflicts">1<', html)
    assert "50.0 %" not in html and 'id="dash-dlq-rate">100.0 %' in html  # 1 gave up, 0 delivered
    # every link of the dashboard opens its filtered list
    dashboard = html[html.index('id="dashboard"'):html.index('id="content-main"')]
    links = _links(dashboard)
    assert len(links) > 10
    for link in set(links):
        response = client.get(link)
        assert response.status_code == 200, link
        assert "?e=1" not in response.get("Location", ""), link


def test_dashboard_shows_only_what_the_role_may_see(world, login):
    support = login("support").get(reverse("admin:index")).content.decode()
    assert "dash-inbox" in support and "dash-outbox" in support
    assert "dash-conflicts" not in support and "dash-reconciliation" not in support
    steward = login("steward").get(reverse("admin:index")).content.decode()
    assert "dash-conflicts" in steward and "dash-reconciliation" in steward
    nobody = login("nobody").get(reverse("admin:index")).content.decode()
    assert 'id="dashboard"' not in nobody
    assert "permission to view or edit anything" in nobody


def test_dashboard_is_a_fixed_number_of_queries(world, login, django_assert_max_num_queries):
    from tests.factories import inbox_event_create, source_create

    for i in range(30):
        inbox_event_create(source=source_create(f"s{i % 5}"), data={"shop_id": i})
    client = login("superuser")
    with django_assert_max_num_queries(30):
        assert client.get(reverse("admin:index")).status_code == 200


def test_customer_page_provenance_history_outbox_and_escaping(world, login):
    html = login("superuser").get(reverse("admin:canonical_customer_change", args=[world.customer.pk])).content.decode()
    assert "golden-record" in html and "crm@example.com" in html
    # provenance links to the inbox event that carried the value
    event = world.failed_event.__class__.objects.get(event_id="evt_crm")
    assert reverse("admin:webhooks_inboxevent_change", args=[event.pk]) in html
    assert "C-1" in html  # external ids
    assert "shop@example.com" in html and f"conflict {world.conflict.pk}" in html  # field history
    assert "Dead letter v" in html  # outbox per target
    assert "Resend to targets" in html


def test_customer_page_is_a_fixed_number_of_queries(world, login, django_assert_max_num_queries):
    for minutes in range(10, 30):
        apply(make_event({"shop_id": 1, "first_name": f"N{minutes}"}, source="shop", minutes=minutes))
    client = login("superuser")
    with django_assert_max_num_queries(40):
        assert client.get(reverse("admin:canonical_customer_change", args=[world.customer.pk])).status_code == 200


def test_sender_html_is_escaped_on_customer_and_inbox_pages(world, login):
    apply(make_event({"crm_id": "C-1", "first_name": "<script>alert(1)</script>"}, source="crm", minutes=30))
    client = login("superuser")
    page = client.get(reverse("admin:canonical_customer_change", args=[world.customer.pk])).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    inbox = client.get(reverse("admin:webhooks_inboxevent_change", args=[world.failed_event.pk])).content.decode()
    assert "<script>x</script>" not in inbox and "<b>bold</b>" not in inbox


def test_bulk_conflict_decision_asks_first_with_the_count(world, login):
    apply(make_event({"crm_id": "C-2", "email": "a@example.com"}, source="crm", event_id="evt_c2"))
    apply(make_event({"crm_id": "C-2", "shop_id": 7, "email": "b@example.com"}, source="shop", minutes=9))
    open_ids = list(Conflict.objects.filter(status="open").values_list("pk", flat=True))
    assert len(open_ids) == 2
    client = login("steward")
    url = reverse("admin:canonical_conflict_changelist")
    page = client.post(url, {"action": "accept_incoming", "_selected_action": open_ids}).content.decode()
    assert "Accept incoming for 2 conflict(s)?" in page and "2 of the selected conflicts are open" in page
    assert Conflict.objects.filter(status="open").count() == 2
    done = client.post(url, {"action": "accept_incoming", "_selected_action": open_ids, "post": "yes"}, follow=True)
    assert "2 conflict(s) resolved (accept incoming)." in done.content.decode()
    assert Conflict.objects.filter(status="accepted_incoming").count() == 2


def test_identity_conflict_cannot_be_accepted_message(world, login):
    conflict = Conflict.objects.create(customer=world.customer, field=Conflict.IDENTITY, event_id="evt_x",
                                       other_customer=world.customer)
    client = login("steward")
    response = client.post(reverse("admin:canonical_conflict_resolve", args=[conflict.pk, "accept_incoming"]),
                           follow=True)
    assert "identity conflicts cannot be accepted" in response.content.decode()
    conflict.refresh_from_db()
    assert conflict.status == "open"


RULE = "admin:canonical_sourcepriorityrule_change"


def _rule_post(client, rule, rows, **extra):
    data = {"strategy": rule.strategy, "sources-TOTAL": str(len(rows)), **extra}
    for index, (name, position) in enumerate(rows):
        data[f"sources-{index}-name"] = name
        data[f"sources-{index}-position"] = position
    return client.post(reverse(RULE, args=[rule.pk]), data)


def test_rule_widget_lists_known_sources_and_saves_by_position(world, login):
    rule = SourcePriorityRule.objects.get(field="email")
    client = login("steward")
    html = client.get(reverse(RULE, args=[rule.pk])).content.decode()
    for name in ("crm", "shop", "support"):
        assert f'data-source="{name}"' in html
    response = _rule_post(client, rule, [("crm", "2"), ("shop", "1"), ("support", "")])
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.sources == ["shop", "crm"]


@pytest.mark.parametrize("rows,message", [
    ([("crm", "1"), ("hacker", "2")], "unknown source: hacker"),
    ([("crm", "1"), ("shop", "1")], "crm and shop both have position 1"),
    ([("crm", "x")], "the position of crm must be a whole number"),
])
def test_rule_widget_refuses_with_a_message(world, login, rows, message):
    rule = SourcePriorityRule.objects.get(field="email")
    response = _rule_post(login("steward"), rule, rows)
    assert response.status_code == 200
    assert message in response.content.decode()
    rule.refresh_from_db()
    assert rule.sources == ["crm", "shop", "support"]


def test_rule_preview_counts_flips_without_saving(world, login):
    rule = SourcePriorityRule.objects.get(field="email")
    response = _rule_post(login("steward"), rule, [("shop", "1"), ("crm", "2"), ("support", "3")], _preview="1")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="preview-flipped">1<' in html and "Please correct" not in html
    rule.refresh_from_db()
    assert rule.sources == ["crm", "shop", "support"]  # nothing saved


def test_rule_preview_service_skips_untouched_sources(world):
    # swapping two sources nobody sent for this field reads no customer
    same = rule_change_preview(field="email", strategy="source_priority", sources=["crm", "shop", "support"])
    assert (same.customers_scanned, same.customers_flipped) == (0, 0)
    flip = rule_change_preview(field="email", strategy="source_priority", sources=["shop", "crm"])
    assert flip.customers_flipped == 1 and flip.sample_customer_ids == [world.customer.pk]
    drop = rule_change_preview(field="email", strategy="source_priority", sources=["shop"])
    assert drop.values_newly_rejected == 1


def test_inbox_replay_of_one_from_its_page(world, login):
    client = login("support")
    page = client.get(reverse("admin:webhooks_inboxevent_change", args=[world.failed_event.pk])).content.decode()
    assert "Replay this event" in page
    confirm = client.get(reverse("admin:webhooks_inboxevent_replay", args=[world.failed_event.pk])).content.decode()
    assert "Replay 1 failed event?" in confirm
    done = client.post(reverse("admin:webhooks_inboxevent_replay", args=[world.failed_event.pk]), {"post": "yes"},
                       follow=True)
    assert "Replayed 1 failed event(s)." in done.content.decode()


def test_resend_confirmation_then_message(world, login):
    client = login("support")
    url = reverse("admin:canonical_customer_resend", args=[world.customer.pk])
    assert "Resend customer" in client.get(url).content.decode()
    done = client.post(url, {"post": "yes"}, follow=True).content.decode()
    assert "Queued 1 customer(s) for resending" in done
