"""manage.py resume_target NAME: deliver what a paused target's outbox holds."""

from django.core.management.base import BaseCommand, CommandError

from core.actors import cli_actor
from targets.maintenance import target_resume
from targets.models import OutboxMessage, TargetsError


class Command(BaseCommand):
    help = "Resume deliveries to a paused target: its backlog is delivered at once, at its rate limit. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The target's name, e.g. crm.")

    def handle(self, *args, name, **options):
        try:
            target, changed = target_resume(target_name=name, actor=cli_actor("resume_target"))
        except TargetsError as exc:
            raise CommandError(str(exc)) from None
        backlog = OutboxMessage.objects.filter(target=target, status__in=[OutboxMessage.Status.PENDING,
                                                                          OutboxMessage.Status.IN_FLIGHT]).count()
        state = "resumed" if changed else "was not paused"
        self.stdout.write(self.style.SUCCESS(f"target {target.name}: {state}; {backlog} message(s) to deliver"))
