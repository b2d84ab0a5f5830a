"""manage.py import_sync_config PATH [--check]: load the sync config into the database."""

from django.core.management.base import BaseCommand, CommandError

from core.config import SyncConfigError, sync_config_apply, sync_config_load, unset_variables


class Command(BaseCommand):
    help = (
        "Import the sync config (JSON; DESIGN.md's format) into the database: sources, and whatever the "
        "importers in SYNC_CONFIG_IMPORTERS handle, all in one transaction. Idempotent. Secrets stay "
        "${VAR} references, resolved from the environment when used."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="Path of the JSON sync config file.")
        parser.add_argument("--check", action="store_true", help="Validate and report, write nothing.")

    def handle(self, *args, path, check, **options):
        try:
            config = sync_config_load(path)
            lines = sync_config_apply(config, dry_run=check)
        except SyncConfigError as exc:
            raise CommandError(f"sync config {path}: {exc}") from None
        for line in lines:
            self.stdout.write(line)
        for name in unset_variables(config):
            self.stderr.write(self.style.WARNING(
                f"warning: environment variable {name} is not set (referenced as ${{{name}}}); "
                "whatever uses it fails until it is set"
            ))
        if check:
            self.stdout.write(self.style.SUCCESS(f"{path}: valid (check only, nothing written)"))
        else:
            self.stdout.write(self.style.SUCCESS(f"{path}: imported"))
