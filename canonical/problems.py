"""Per-field data-quality problems: recorded on the event, never raised."""

from typing import Any, Literal

Severity = Literal["error", "warning"]
EXCERPT_CHARS = 40


def excerpt(value: Any) -> str:
    """A short excerpt of a bad value: enough to recognise it, never a whole record."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def problem(field: str, value: Any, message: str, severity: Severity = "error") -> dict:
    return {"field": field, "value": excerpt(value), "message": message, "severity": severity}
