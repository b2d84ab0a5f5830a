"""Validators for target settings."""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError


def validate_http_url(value: str) -> None:
    """http(s) URL with a host; single-label hosts (`sandbox`, `cdp-api`) are fine: compose and k8s use them."""
    parts = urlsplit(value or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Enter an http:// or https:// URL with a host name, e.g. http://cdp-api:8080/api.")
