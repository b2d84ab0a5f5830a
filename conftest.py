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
