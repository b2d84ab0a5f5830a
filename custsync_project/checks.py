"""System checks for settings combinations that cannot work (`manage.py check`).

The roof owns the settings, so these live here; they read settings only (no
database) and run by default. Each hint says why the combination fails.
Errors stop `qcluster`, `migrate` and the other commands at start-up; a
warning is printed and the system runs, worse. Left out on purpose, because
they do not fail: a negative `INBOX_KICK_INTERVAL_SECONDS` (treated like 0,
one wake-up per event), an `INBOX_BATCH_SIZE` below 1 (the pump claims at
least one event).
"""

from django.conf import settings
from django.core import checks

from targets.services import PUMP_BUDGET_SECONDS as TARGET_PUMP_BUDGET_SECONDS


def _clusters() -> list[tuple[str, dict]]:
    """(name, effective configuration) of the main cluster and each ALT_CLUSTERS entry.

    django-q2 builds an alt cluster's configuration as the main one updated
    with the alt entry (django_q.conf), so unset keys are inherited.
    """
    main = {key: value for key, value in settings.Q_CLUSTER.items() if key != "ALT_CLUSTERS"}
    clusters = [(main.get("name", "default"), main)]
    for name, alt in (settings.Q_CLUSTER.get("ALT_CLUSTERS") or {}).items():
        if isinstance(alt, dict):
            clusters.append((name, {**main, **alt}))
    return clusters


def check_q_retry_exceeds_timeout(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """custsync_project.E001: a cluster's retry not above its timeout (PITFALLS: "retry must exceed timeout").

    Skipped with `sync: True` (tasks run inline, neither applies) and without a
    timeout (django-q2 warns about that itself).
    """
    problems = []
    for name, conf in _clusters():
        timeout, retry = conf.get("timeout"), conf.get("retry", 60)  # 60: django-q2's default retry
        if conf.get("sync") or not timeout:
            continue
        if retry <= timeout:
            problems.append(checks.Error(
                f"django-q2 cluster {name!r}: retry ({retry} s) is not above timeout ({timeout} s)",
                hint="The broker hands a task out again after `retry` seconds without an acknowledgement, so a "
                     "task running longer than that runs twice at once. Set Q_RETRY (or the cluster's 'retry') "
                     "above Q_TIMEOUT plus the time a task waits in the cluster's queue, e.g. 180 for 60.",
                id="custsync_project.E001",
            ))
    return problems


def _main_timeout():
    conf = _clusters()[0][1]
    return None if conf.get("sync") else conf.get("timeout")


def _delivery_timeout():
    for name, conf in _clusters():
        if name == settings.DELIVERY_CLUSTER:
            return None if conf.get("sync") else conf.get("timeout")
    return None


def check_pump_budgets(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """custsync_project.W001 / W002: a pump's time budget not below the timeout of the cluster it runs on.

    A pump hands over to a successor only when its budget is spent (it checks
    after each batch or delivery); the cluster kills a task at `timeout`. A
    budget at or above the timeout means every pump that meets a backlog is
    killed mid-batch instead: its batch rolls back, no successor is woken, and
    the claimed work waits for its lease to expire and the sweeper. The system
    still progresses (warning, not error), at a fraction of its throughput.
    """
    problems = []
    timeout = _main_timeout()
    budget = settings.INBOX_PUMP_BUDGET_SECONDS
    if timeout and budget >= timeout:
        problems.append(checks.Warning(
            f"INBOX_PUMP_BUDGET_SECONDS ({budget:g} s) is not below the main django-q2 cluster's "
            f"timeout ({timeout} s)",
            hint="Under a backlog each inbox pump is killed at the timeout instead of handing over when its budget "
                 "is spent: its batch rolls back and its events wait for INBOX_LEASE_SECONDS and the sweeper. "
                 "Keep the budget well below Q_TIMEOUT (default 30 s for 60 s).",
            id="custsync_project.W001",
        ))
    timeout = _delivery_timeout()
    if timeout and TARGET_PUMP_BUDGET_SECONDS >= timeout:
        problems.append(checks.Warning(
            f"django-q2 cluster {settings.DELIVERY_CLUSTER!r}: timeout ({timeout} s) is not above a delivery "
            f"pump's budget ({TARGET_PUMP_BUDGET_SECONDS:g} s, targets.services.PUMP_BUDGET_SECONDS)",
            hint="Under a backlog each delivery pump is killed at the timeout, often with a request in flight; its "
                 "message is retried only after its lease expires. Set Q_TIMEOUT (or the delivery cluster's "
                 "'timeout') above the budget plus the slowest target's request timeout.",
            id="custsync_project.W002",
        ))
    return problems


def check_inbox_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """custsync_project.E002 / W003: inbox values outside what the pump can use."""
    problems = []
    if settings.INBOX_LEASE_SECONDS < 1:
        problems.append(checks.Error(
            f"INBOX_LEASE_SECONDS is {settings.INBOX_LEASE_SECONDS}: a claim on an inbox event expires at once",
            hint="An event a pump is applying is claimable again immediately, by other pumps and by the sweeper "
                 "(which re-marks it), so pumps take each other's events and their work is thrown away as "
                 "lease_lost. Set it above the longest batch, e.g. the default 120.",
            id="custsync_project.E002",
        ))
    if settings.INBOX_MAX_ATTEMPTS < 1:
        problems.append(checks.Warning(
            f"INBOX_MAX_ATTEMPTS is {settings.INBOX_MAX_ATTEMPTS}: it acts as 1, an event is parked as failed "
            "at its first crash",
            hint="Unlike django-q2's max_attempts, 0 does not mean retry forever: attempts are counted from 1. "
                 "Set the number of tries you want (default 5).",
            id="custsync_project.W003",
        ))
    return problems


def check_webhook_tolerance(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """custsync_project.E003: a timestamp tolerance that refuses (nearly) every signed request."""
    tolerance = settings.WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS
    if tolerance >= 1:
        return []
    return [checks.Error(
        f"WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS is {tolerance}, below 1 s: signed requests are refused",
        hint="A request is refused with 401 when its signed timestamp is more than the tolerance away from the "
             "server's clock: below 0 every request is refused, at 0 every one that crosses a second boundary "
             "on its way. The contract is 300 s; leave it unset.",
        id="custsync_project.E003",
    )]
