"""The `worker` process type: a django-q2 cluster plus its Prometheus endpoint."""

import os
import shutil

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Run a django-q2 cluster (inbox processing, deliveries, sweeps). With PROMETHEUS_MULTIPROC_DIR set, "
        "the directory is emptied at start (METRICS_ROOT: a directory per worker below it); with METRICS_PORT set, the worker's metrics are served on that port."
    )

    def handle(self, *args, **options):
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
        call_command("qcluster")
