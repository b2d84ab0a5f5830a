"""`manage.py qcluster`: the worker, doing every kind of work (see custsync_project/worker.py).

This command replaces django-q2's own `qcluster` (the roof app is listed before `django_q` in
INSTALLED_APPS). Without `Q_CLUSTER_NAME` it runs every cluster (inbox, sweeps and reconciliation
on the main one, deliveries on the delivery one); with `Q_CLUSTER_NAME=<cluster>` (or `--name`)
it runs that cluster only, as django-q2's does, and warns at start-up about the work it leaves out.
"""

import argparse
import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from custsync_project.worker import cluster_run, worker_run


class Command(BaseCommand):
    help = (
        "Run a worker: every django-q2 cluster (inbox processing, sweeps and reconciliation on the main one; "
        "deliveries on settings.DELIVERY_CLUSTER, Q_DELIVERY_WORKERS processes, so a slow target never holds up "
        "the inbox). With Q_CLUSTER_NAME=<cluster> only that cluster (a warning names the work left out). "
        "Stops within about WORKER_STOP_GRACE_SECONDS on SIGTERM or SIGINT. With PROMETHEUS_MULTIPROC_DIR set, "
        "the directory is emptied at start (METRICS_ROOT: a directory per worker below it); with METRICS_PORT "
        "set, the worker's metrics are served on that port."
    )

    def add_arguments(self, parser):
        parser.add_argument("-n", "--name", dest="cluster_name", default=None,
                            help="Run only this cluster (as Q_CLUSTER_NAME=<cluster> does).")
        parser.add_argument("--run-once", action="store_true", help="Start, then stop at once (a smoke test).")
        parser.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)  # a child of worker_run

    def handle(self, *args, cluster_name=None, run_once=False, supervised=False, **options):
        settings.SECRET_KEY  # noqa: B018 - task messages are signed with it: fail now, not at the first task
        if cluster_name and os.environ.get("Q_CLUSTER_NAME") != cluster_name:
            # django-q2 reads Q_CLUSTER_NAME once, at import: start afresh with it set.
            os.execve(sys.executable, [sys.executable, *sys.argv],
                      {**os.environ, "Q_CLUSTER_NAME": cluster_name})
        if os.environ.get("Q_CLUSTER_NAME"):
            status = cluster_run(supervised=supervised, run_once=run_once)
        else:
            status = worker_run(run_once=run_once)
        if status:
            sys.exit(status)
