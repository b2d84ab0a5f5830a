"""Reads of sources and inbox events."""

import os
import threading
import time

from django.conf import settings

from core.secrets import reference_variable

from .models import Source

# name -> (monotonic expiry, Source); only enabled sources are kept, so unknown names sent by
# strangers cost a query each but never grow the cache. Cleared in this process by every
# Source save/delete (signals in apps.py); other processes see a change within the TTL.
_enabled_sources: dict[str, tuple[float, Source]] = {}
_enabled_sources_lock = threading.Lock()


def source_cache_clear(**kwargs) -> None:
    with _enabled_sources_lock:
        _enabled_sources.clear()


def source_enabled_get(*, name: str) -> Source | None:
    """The enabled source called `name`, or None; kept per process for WEBHOOK_SOURCE_CACHE_SECONDS.

    The lookup was a fifth of the gateway's CPU per request (py-spy, bench/ingest.py).
    """
    ttl = settings.WEBHOOK_SOURCE_CACHE_SECONDS
    now = time.monotonic()
    if ttl > 0:
        cached = _enabled_sources.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
    try:
        source = Source.objects.only(
            "id", "name", "enabled", "signature_scheme", "secret_refs", "schema_versions", "event_types",
        ).get(name=name, enabled=True)
    except Source.DoesNotExist:
        return None
    if ttl > 0:
        with _enabled_sources_lock:
            _enabled_sources[name] = (now + ttl, source)
    return source


def secret_ref_status(*, secret_refs: list[str]) -> list[tuple[str, bool]]:
    """(variable name, is it set in this process's environment) per reference; never the value."""
    status = []
    for ref in secret_refs or []:
        try:
            name = reference_variable(ref)
        except Exception:
            status.append(("(not a reference)", False))
            continue
        status.append((name, bool(os.environ.get(name))))
    return status
