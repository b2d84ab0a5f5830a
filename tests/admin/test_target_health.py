"""The dashboard shows each target's health (up, held, down since with the last error, paused), backlog and oldest pending change."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from custsync_project.dashboard import _target_paused, _target_state
from targets.maintenance import target_pause
from targets.models import OutboxMessage, TargetRuntime
from tests.factories import target_create

pytestmark = pytest.mark.django_db


def _down(target, *, error="connection error: ConnectionError", minutes=7):
    TargetRuntime.objects.update_or_create(target=target, defaults=dict(
        health="down", down_since=timezone.now() - timedelta(minutes=minutes), health_error=error,
        next_probe_at=timezone.now() + timedelta(seconds=30)))


def test_dashboard_shows_up_down_with_the_last_error_and_the_oldest_pending_change(world, login):
    # given the world's cdp (up) and a crm down for 7 minutes with a change waiting 2 h
    crm = target_create("crm", kind="crm", base_url="http://127.0.0.1:9/crm")
    _down(crm, error="timeout after 20 s <script>")
    OutboxMessage.objects.create(target=crm, customer=world.customer, version=1, next_attempt_at=timezone.now())
    OutboxMessage.objects.filter(target=crm).update(created_at=timezone.now() - timedelta(hours=2, minutes=5))
    # when
    html = login("support").get(reverse("admin:index")).content.decode()
    # then
    assert re.search(r'id="dash-state-cdp"[^>]*data-state="up">up<', html)
    crm_state = re.search(r'id="dash-state-crm"[^>]*data-state="down">(.*?)</td>', html, re.S).group(1)
    assert "down since" in crm_state and "timeout after 20 s &lt;script&gt;" in crm_state  # escaped
    assert re.search(r'id="dash-oldest-crm">2 h 5 min<', html)
    assert re.search(r'id="dash-oldest-cdp">none waiting<', html)


def test_a_held_target_and_the_paused_part():
    now = timezone.now()
    held = _target_state(now=now, runtime={"health": "up", "retry_after_until": now + timedelta(seconds=20)}, paused=None)
    assert held["state"] == "held" and held["warn"]
    assert _target_state(now=now, runtime={"health": "up", "retry_after_until": now - timedelta(seconds=1)},
                         paused=None)["state"] == "up"
    # a running target is not paused
    assert _target_paused({"id": 1, "name": "crm", "paused_at": None}) is None
    paused = _target_paused({"paused_at": now, "paused_by": "support-anna", "pause_reason": "CRM maintenance"})
    state = _target_state(now=now, runtime={"health": "down"}, paused=paused)
    assert (state["state"], state["label"], state["error"]) == ("paused", "paused by support-anna", "CRM maintenance")


def test_dashboard_shows_who_paused_a_target_and_why(world, login):
    # given support paused the world's cdp for its maintenance
    target_pause(target_name=world.target.name, actor="support-anna", reason="CDP maintenance")
    # when
    html = login("support").get(reverse("admin:index")).content.decode()
    # then
    state = re.search(rf'id="dash-state-{world.target.name}"[^>]*data-state="paused">(.*?)</td>', html, re.S).group(1)
    assert "paused by support-anna" in state and "CDP maintenance" in state
