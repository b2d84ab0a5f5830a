"""Target adapters. Adding a kind: a module with a `TargetAdapter` subclass decorated
with `@register`, imported here, and a `Target.Kind` choice."""

from .base import PreparedCall, SendResult, TargetAdapter, adapter_for, register  # noqa: F401

from . import cdp, crm, webhook  # noqa: E402,F401  (importing registers the built-in kinds)
