"""Datetimes as custsync writes them out: ISO 8601 in UTC with a `Z` suffix."""

from datetime import datetime, timezone


def iso_z(value: datetime | None) -> str | None:
    """`2026-01-14T10:12:00Z` (microseconds kept when present); None stays None.

    The value is converted to UTC first, so the same moment always gives the
    same text: the export, provenance and batch import's dedup keys rely on it.
    """
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
