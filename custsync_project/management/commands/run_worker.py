"""The `worker` process type: the main django-q2 cluster, the delivery cluster, and their metrics endpoint."""

import ctypes
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

PR_SET_PDEATHSIG = 1
try:  # loaded here, not after fork: dlopen in a forked child can deadlock
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    """Linux: the delivery cluster gets SIGTERM if this process dies, even by SIGKILL."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Command(BaseCommand):
    help = (
        "Run the worker: a django-q2 cluster for inbox processing, sweeps and reconciliation, plus a second "
        "cluster for deliveries (settings.DELIVERY_CLUSTER, Q_DELIVERY_WORKERS processes) so a slow target never "
        "holds up the inbox. With PROMETHEUS_MULTIPROC_DIR set, the directory is emptied at start (METRICS_ROOT: "
        "a directory per worker below it); with METRICS_PORT set, the worker's metrics are served on that port."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-delivery", action="store_true",
                            help="Run only the main cluster (deliveries then need another worker that runs them).")

    def handle(self, *args, no_delivery=False, **options):
        self._metrics_setup()
        delivery = None
        if not no_delivery:
            delivery = subprocess.Popen(
                [sys.executable, str(settings.BASE_DIR / "manage.py"), "qcluster"],
                env={**os.environ, "Q_CLUSTER_NAME": settings.DELIVERY_CLUSTER}, preexec_fn=_die_with_parent,
            )
        try:
            # Returns once the cluster runs; it lives on in its sentinel process, and SIGTERM/SIGINT
            # reach django-q's handler in this process, which stops it.
            call_command("qcluster")
            self._wait(delivery)
        finally:
            if delivery is not None and delivery.poll() is None:
                delivery.terminate()
                try:
                    delivery.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    delivery.kill()

    def _wait(self, delivery: subprocess.Popen | None) -> None:
        """Until the main cluster stops; if the delivery cluster dies, stop too (so the worker restarts)."""
        stopping = False
        while multiprocessing.active_children():
            if delivery is not None and not stopping and delivery.poll() is not None:
                self.stderr.write(f"delivery cluster exited with {delivery.returncode}: stopping the worker")
                os.kill(os.getpid(), signal.SIGTERM)
                stopping = True
            time.sleep(0.5)

    def _metrics_setup(self) -> None:
        root = os.environ.get("METRICS_ROOT")
        if root and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(root, f"worker-{os.getpid()}")
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            shutil.rmtree(directory, ignore_errors=True)
            os.makedirs(directory, exist_ok=True)
        port = os.environ.get("METRICS_PORT")
        if port:
            from prometheus_client import CollectorRegistry, start_http_server

            registry = CollectorRegistry()
            if directory:
                from prometheus_client.multiprocess import MultiProcessCollector

                MultiProcessCollector(registry, path=directory)
            start_http_server(int(port), registry=registry)
            self.stdout.write(f"worker metrics on :{port}/metrics")
