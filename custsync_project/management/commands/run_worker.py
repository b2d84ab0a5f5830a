"""`manage.py run_worker`: the documented older name of `manage.py qcluster` (the same worker)."""

import sys

from django.conf import settings

from custsync_project.worker import worker_run

from .qcluster import Command as QclusterCommand


class Command(QclusterCommand):
    help = "The same worker as `manage.py qcluster`. " + QclusterCommand.help

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--no-delivery", action="store_true",
                            help="Run only the main cluster (a warning says so: deliveries then need another "
                                 "worker that runs the delivery cluster).")

    def handle(self, *args, no_delivery=False, **options):
        if not no_delivery:
            return super().handle(*args, **options)
        status = worker_run(clusters=[settings.Q_CLUSTER["name"]], run_once=options.get("run_once", False))
        if status:
            sys.exit(status)
