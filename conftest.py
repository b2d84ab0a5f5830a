"""Shared pytest configuration: PostgreSQL-only tests skip on SQLite with a reason."""

import pytest
from django.conf import settings


def pytest_collection_modifyitems(config, items):
    if not settings.IS_SQLITE:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (row locks, real concurrency); set DATABASE_URL=postgres://...")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """Admin pages in tests: no collectstatic manifest needed (production uses whitenoise's manifest)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _inbox_wake_up_per_event(settings):
    """In-process tests: one pump wake-up per accepted event, no trailing timer thread (which
    would write to the broker from outside the test's transaction). Subprocess tests keep the default."""
    settings.INBOX_KICK_INTERVAL_SECONDS = 0


@pytest.fixture(autouse=True)
def _source_read_per_request(settings):
    """The per-process source cache outlives a test's rolled-back rows; tests that want it turn it on."""
    settings.WEBHOOK_SOURCE_CACHE_SECONDS = 0
