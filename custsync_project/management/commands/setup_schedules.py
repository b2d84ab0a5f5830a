"""Create the django-q2 schedules idempotently (run at set-up and on every deploy)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from custsync_project.schedules import schedules_ensure


class Command(BaseCommand):
    help = "Create or update the periodic tasks (sweepers, nightly reconciliation). Safe to run repeatedly."

    def handle(self, *args, **options):
        for spec in settings.CUSTSYNC_SCHEDULES:
            try:
                import_string(spec["func"])
            except ImportError as exc:
                raise CommandError(f"schedule {spec['name']!r}: cannot import {spec['func']}: {exc}") from exc
        for line in schedules_ensure(specs=settings.CUSTSYNC_SCHEDULES):
            self.stdout.write(line)
