"""Validators for target settings."""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError


def is_http_url(value) -> bool:
    """An http(s) URL with a host; single-label hosts (`sandbox`, `cdp-api`) are fine: compose and k8s use them."""
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def validate_http_url(value: str) -> None:
    """The model fields' validator (`Target.base_url`, `oauth_token_url`); the sync config checks with `is_http_url`."""
    if not is_http_url(value):
        raise ValidationError("Enter an http:// or https:// URL with a host name, e.g. http://cdp-api:8080/api.")
