"""manage.py pause_target NAME [--reason TEXT]: stop deliveries to a target for a maintenance window."""

from django.core.management.base import BaseCommand, CommandError

from core.actors import cli_actor
from targets.maintenance import target_pause
from targets.models import TargetsError


class Command(BaseCommand):
    help = ("Pause deliveries to a target (e.g. for its maintenance window): changes keep coalescing in the "
            "outbox and are delivered when it is resumed with resume_target. Idempotent.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="The target's name, e.g. crm.")
        parser.add_argument("--reason", default="", help="Shown in the admin beside who paused it.")

    def handle(self, *args, name, reason, **options):
        try:
            target, changed = target_pause(target_name=name, actor=cli_actor("pause_target"), reason=reason)
        except TargetsError as exc:
            raise CommandError(str(exc)) from None
        if changed:
            self.stdout.write(self.style.SUCCESS(f"target {target.name}: paused"))
        else:
            self.stdout.write(f"target {target.name}: already paused since {target.paused_at:%Y-%m-%d %H:%M:%S} "
                              f"by {target.paused_by}")
