"""manage.py resync_target NAME [--async]: queue every customer the target missed."""

from django.core.management.base import BaseCommand, CommandError

from core.actors import cli_actor
from targets.maintenance import RESYNC_BATCH_SIZE, target_resync_run, target_resync_start
from targets.models import TargetsError


class Command(BaseCommand):
    help = ("Queue every customer a target missed (after it was disabled, or to be sure): live customers whose "
            "current version it never acknowledged, and erased or merged-away ones it still holds. Delivery then "
            "goes through the outbox (rate limit, retries). Runs here with progress; with --async a worker runs "
            "it (progress on the target's page in the admin). A running resync of the same target is superseded.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="The target's name, e.g. crm.")
        parser.add_argument("--async", dest="run_async", action="store_true", help="Leave the job to the workers.")
        parser.add_argument("--batch-size", type=int, default=RESYNC_BATCH_SIZE, help="Customers per transaction.")

    def handle(self, *args, name, run_async, batch_size, verbosity, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            job = target_resync_start(target_name=name, actor=cli_actor("resync_target"), run_async=run_async)
        except TargetsError as exc:
            raise CommandError(str(exc)) from None
        if run_async:
            self.stdout.write(self.style.SUCCESS(f"resync {job.pk} of target {name}: queued for the workers"))
            return

        def progress(current):
            if verbosity >= 1:
                self.stdout.write(f"resync {current.pk}: {current.progress}")

        job = target_resync_run(resync_id=job.pk, batch_size=batch_size, progress=progress)
        self.stdout.write(self.style.SUCCESS(f"resync {job.pk} of target {name}: {job.get_status_display().lower()}; "
                                             f"{job.progress}"))
