"""Operator endpoints: liveness, readiness and Prometheus metrics (no auth; expose inside the cluster only)."""

import logging
import os
import re
import time

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import REGISTRY as PROCESS_REGISTRY

from custsync_project.metrics_db import DatabaseCollector

logger = logging.getLogger(__name__)

# Migrations rarely change while a process runs: remember a positive answer for a minute.
_MIGRATIONS_OK_UNTIL = 0.0


@require_GET
def healthz(request):
    """The process is up and serving requests; nothing else is checked."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_migrations() -> None:
    global _MIGRATIONS_OK_UNTIL
    if time.monotonic() < _MIGRATIONS_OK_UNTIL:
        return
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise RuntimeError(f"{len(plan)} migration(s) not applied")
    _MIGRATIONS_OK_UNTIL = time.monotonic() + 60


def _check_broker() -> None:
    from django_q.brokers import get_broker

    if not get_broker().ping():
        raise RuntimeError("broker did not answer")


_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]*@")


def _mask_credentials(text: str) -> str:
    """`scheme://user:password@host` -> `scheme://***@host`."""
    return _URL_CREDENTIALS.sub("***@", text)


@require_GET
def readyz(request):
    """Ready for traffic: database reachable, migrations applied, task broker reachable."""
    checks = {"database": _check_database, "migrations": _check_migrations, "broker": _check_broker}
    results, ready = {}, True
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - report every failing dependency by name
            ready = False
            # Unauthenticated answer: the exception's type only (its text can name internal hosts or
            # carry a URL with credentials); the log gets the text with URL credentials masked.
            results[name] = f"error: {type(exc).__name__}"
            logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, _mask_credentials(str(exc))[:200])
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": results}, status=200 if ready else 503)


def _metric_dirs() -> list[str]:
    """This process's multiprocess directory plus, with METRICS_ROOT, every process type's below it."""
    dirs = [d for d in os.environ.get("METRICS_DIRS", "").split(os.pathsep) if d]
    root = os.environ.get("METRICS_ROOT")
    if root and os.path.isdir(root):
        dirs += sorted(os.path.join(root, d) for d in os.listdir(root))
    own = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if own and own not in dirs:
        dirs.insert(0, own)
    return [d for d in dirs if os.path.isdir(d)]


@require_GET
def metrics(request):
    """Prometheus text format: process or multiprocess counters plus gauges read from the database."""
    registry = CollectorRegistry()
    dirs = _metric_dirs()
    if dirs:
        from prometheus_client.multiprocess import MultiProcessCollector

        for directory in dirs:
            MultiProcessCollector(registry, path=directory)
        body = generate_latest(registry)
    else:
        body = generate_latest(PROCESS_REGISTRY)
    db_registry = CollectorRegistry()
    db_registry.register(DatabaseCollector())
    body += generate_latest(db_registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
