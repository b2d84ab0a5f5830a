"""Replay dead letters: back to pending, attempts reset, due now."""

from django.core.management.base import BaseCommand, CommandError

from targets.models import Target
from targets.services import dead_letter_replay


class Command(BaseCommand):
    help = ("Replay the dead-letter queue (optionally one target): messages go back to pending and are "
            "delivered with the idempotency key of their version, so nothing already applied repeats.")

    def add_arguments(self, parser):
        parser.add_argument("--target", help="Target name; default: every target.")

    def handle(self, *args, **options):
        name = options.get("target")
        if name and not Target.objects.filter(name=name).exists():
            raise CommandError(f"no target named {name!r}")
        counts = dead_letter_replay(target_name=name)
        self.stdout.write(
            f"replayed {counts['replayed']} dead letter(s)"
            + (f" for target {name}" if name else "")
            + (f"; {counts['superseded']} superseded by a newer pending message" if counts["superseded"] else "")
        )
