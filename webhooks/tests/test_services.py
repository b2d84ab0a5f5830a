"""Services: only the dedup constraint means duplicate; replay; enqueue."""

import pytest
from django.db import OperationalError

from webhooks.errors import WebhookError
from webhooks.models import InboxEvent
from webhooks.services import _inbox_event_insert, inbox_event_replay

from .conftest import sample_event

pytestmark = pytest.mark.django_db


def _event(shop, **overrides):
    values = dict(source=shop, event_id="evt_1", type="customer.upsert", schema_version=1,
                  occurred_at="2026-01-14T10:12:00Z", payload=sample_event())
    values.update(overrides)
    return InboxEvent(**values)


def test_another_constraint_violation_is_not_a_duplicate(shop):
    # a real IntegrityError from another constraint (empty event_id) must not be "duplicate_ignored"
    with pytest.raises(WebhookError) as info:
        _inbox_event_insert(event=_event(shop, event_id=""))
    assert info.value.status_code == 503
    with pytest.raises(WebhookError) as info:
        _inbox_event_insert(event=_event(shop, status="bogus"))
    assert info.value.status_code == 503
    assert not InboxEvent.objects.exists()


def test_the_dedup_constraint_is_a_duplicate(shop):
    assert _inbox_event_insert(event=_event(shop)).status == "accepted"
    assert _inbox_event_insert(event=_event(shop)).status == "duplicate_ignored"


def test_database_down_is_503_never_duplicate(shop, post, monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("could not connect")

    monkeypatch.setattr(InboxEvent, "save", down)
    response = post(sample_event())
    assert response.status_code == 503
    assert response.json() == {"ok": False, "error": "the event could not be stored; retry later"}


def test_replay_resets_only_failed_events_and_wakes_the_pump_after_commit(shop, monkeypatch,
                                                                    django_capture_on_commit_callbacks):
    failed = _event(shop, event_id="f", status="failed", attempts=5, last_error="boom",
                    lease_owner="w1", lease_expires_at="2026-01-14T10:12:00Z")
    failed.save()
    done = _event(shop, event_id="d", status="processed")
    done.save()
    enqueued = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda *args, **kw: enqueued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        replayed = inbox_event_replay(event_ids=[failed.pk, done.pk])
    assert replayed == [failed.pk]
    failed.refresh_from_db()
    done.refresh_from_db()
    assert (failed.status, failed.lease_owner, failed.lease_expires_at) == ("received", "", None)
    assert (failed.attempts, failed.last_error) == (5, "boom")  # history kept
    assert done.status == "processed"
    assert enqueued == [("webhooks.processing.inbox_pump",)]  # one wake-up for the whole replay


def test_log_lines_about_a_stored_event_carry_its_id(caplog):
    """Correlation: the gateway's lines about an event carry the event id, like the worker's."""
    import logging

    from core.logging import CorrelationFilter, correlation_id_var
    from webhooks.services import _inbox_event_insert

    seen = []

    class Capture(logging.Handler):
        def emit(self, record):
            seen.append(correlation_id_var.get())

    handler = Capture(level=logging.DEBUG)
    handler.addFilter(CorrelationFilter())
    logger = logging.getLogger("webhooks.services")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        from tests.factories import source_create
        from webhooks.models import InboxEvent
        from datetime import datetime, timezone

        source = source_create("shop")
        event = InboxEvent(source=source, event_id="evt_corr_1", type="customer.upsert", schema_version=1,
                           occurred_at=datetime(2026, 1, 14, tzinfo=timezone.utc), payload={"data": {}})
        _inbox_event_insert(event=event)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert seen and all(value == "evt_corr_1" for value in seen)
