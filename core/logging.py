"""Structured logging with the correlation id on every line.

The correlation id is the inbox event id: the gateway, the worker and the
delivery code set it with `correlation(...)` and every log line written inside
carries it. `LOG_FORMAT=json` writes JSON lines (production), `text` readable
lines (development). Never pass a secret or a whole personal record to a logger.
"""

import contextlib
import contextvars
import json
import logging
from datetime import datetime, timezone

correlation_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")

# Attributes every LogRecord has; anything else was passed with `extra=` and is emitted as a field.
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "correlation_id"}


@contextlib.contextmanager
def correlation(correlation_id: str):
    """Tag every log line inside the block with `correlation_id`."""
    token = correlation_id_var.set(correlation_id or "")
    try:
        yield
    finally:
        correlation_id_var.reset(token)


class CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "correlation_id", ""):
            record.correlation_id = correlation_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "correlation_id", ""):
            entry["correlation_id"] = record.correlation_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(correlation_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = correlation_id_var.get()
        record.correlation_id = record.correlation_id or "-"
        return super().format(record)


def logging_config(*, fmt: str, level: str) -> dict:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"correlation": {"()": CorrelationFilter}},
        "formatters": {"json": {"()": JsonFormatter}, "text": {"()": TextFormatter}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if fmt == "json" else "text",
                "filters": ["correlation"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "django-q": {"level": env_level_for_django_q(level)},
        },
    }


def env_level_for_django_q(level: str) -> str:
    # django-q logs every task at INFO; keep its noise down unless debugging.
    return "DEBUG" if level == "DEBUG" else "WARNING"
