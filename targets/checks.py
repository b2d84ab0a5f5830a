"""System checks for targets that cannot deliver as configured (`manage.py check`).

They read `Target` rows and run by default, not only under `--database`: the
start of the worker (`qcluster`, which does the deliveries) is where an operator should
see that a target lacks its secret. The table access is guarded: before
`migrate` (no table) or with the database unreachable they report nothing.
Only enabled targets are checked (a disabled one is never pumped). Messages
name the target and the environment variable, never a value.

On the rate limit: `rate_limit_per_minute` is a PositiveIntegerField (the
database refuses negatives) and 0 means "unlimited" by design, so a limit
"below 1" is never a mistake to report. What does misbehave is a limit so low
that one slot is longer than a pump's time budget: see `check_target_rate_limits`.
"""

import math

from django.core import checks
from django.db import DatabaseError

from core.secrets import is_reference, unset_variables_of

from .models import Target
from .ratelimit import SAFETY_SECONDS, slot_interval
from .services import PUMP_BUDGET_SECONDS
from .sync_config import SECRET_KEY_BY_AUTH


def _enabled_targets(app_configs) -> list[Target]:
    if app_configs is not None and not any(config.label == Target._meta.app_label for config in app_configs):
        return []
    try:
        return list(Target.objects.filter(enabled=True).only(
            "name", "auth_kind", "secret_refs", "oauth_client_id", "rate_limit_per_minute",
        ))
    except DatabaseError:  # before migrate, or no database: nothing to check yet
        return []


def _secret_key(target: Target) -> str | None:
    """The `secret_refs` key the target's authentication resolves (targets.auth), None for no auth."""
    if target.auth_kind == Target.AuthKind.OAUTH2:
        return "client_secret"
    return SECRET_KEY_BY_AUTH.get(target.auth_kind)


def check_target_secrets(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """targets.W001 / W002: the reference the target's authentication needs is unset or absent.

    Warnings, not errors: the system runs and other targets deliver; this
    target's messages fail (and retry, then dead-letter) until it is fixed.
    """
    problems = []
    for target in _enabled_targets(app_configs):
        key = _secret_key(target)
        if key is None:
            continue
        reference = (target.secret_refs or {}).get(key)
        if not reference:
            problems.append(checks.Warning(
                f"target {target.name!r} authenticates with {target.auth_kind} but has no secret reference {key!r}",
                hint=f"Every delivery to it fails. Set secret_refs {{\"{key}\": \"${{NAME}}\"}} (sync config or "
                     "admin) and NAME in the environment, or change its auth kind.",
                obj=target, id="targets.W002",
            ))
            continue
        references = [reference]
        if target.auth_kind == Target.AuthKind.OAUTH2 and is_reference(target.oauth_client_id):
            references.append(target.oauth_client_id)
        unset = unset_variables_of(references)
        if unset:
            problems.append(checks.Warning(
                f"target {target.name!r} references environment variable(s) that are not set: {', '.join(unset)}",
                hint="Its deliveries fail until the variable is set in the environment of the worker processes "
                     "(qcluster); then replay its dead letters.",
                obj=target, id="targets.W001",
            ))
    return problems


def check_target_rate_limits(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """targets.W003: a limit whose slot interval exceeds the pump's budget.

    A target pump stops when the next slot lies beyond its budget
    (PUMP_BUDGET_SECONDS) and, with messages still due, enqueues a successor at
    once; that successor finds the slot still too far and does the same. So
    while a slot is further away than the budget, pump tasks chase each other
    through the delivery queue (measured: a pump returned in 12 ms with a 40 s
    wait). Deliveries stay correct and within the limit; the queue churns. With
    slots spaced (60 + SAFETY_SECONDS) / limit seconds and a 20 s budget this
    is a limit of 1 to 3 per minute.
    0 (unlimited) is never reported.
    """
    lowest_fine = math.ceil((60 + SAFETY_SECONDS) / PUMP_BUDGET_SECONDS)
    problems = []
    for target in _enabled_targets(app_configs):
        limit = target.rate_limit_per_minute
        if limit > 0 and slot_interval(limit) > PUMP_BUDGET_SECONDS:
            problems.append(checks.Warning(
                f"target {target.name!r} has rate_limit_per_minute={limit}: one slot every "
                f"{slot_interval(limit):.1f} s, longer than a delivery pump's {PUMP_BUDGET_SECONDS:.0f} s budget",
                hint="While the next slot is further away than the budget, each pump task ends at once and enqueues "
                     "the next (busy delivery queue, no extra deliveries). Use a limit of "
                     f"{lowest_fine} or more per minute, or 0 for unlimited.",
                obj=target, id="targets.W003",
            ))
    return problems
