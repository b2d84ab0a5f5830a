"""manage.py import_customers --source NAME FILE [--format csv|jsonl] [--schema-version N] ..."""

import json
from datetime import timezone

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from reconciliation.batch_import import customers_import
from reconciliation.models import ReconciliationError


class Command(BaseCommand):
    help = ("Import a source system's CSV or JSONL export: each row becomes an inbox event of that source "
            "(stable dedup key: importing the same file twice changes nothing) processed like a webhook. "
            "Prints progress, rejected rows with line numbers and a summary.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="The export file (CSV with a header row, or JSON Lines).")
        parser.add_argument("--source", required=True, help="The source system the file comes from, e.g. shop.")
        parser.add_argument("--format", choices=["csv", "jsonl"], help="Default: from the file extension.")
        parser.add_argument("--schema-version", type=int, default=1,
                            help="Schema version of data-only rows (CSV: always 1). Default 1.")
        parser.add_argument("--occurred-at",
                            help="ISO 8601 time the export describes, for rows without occurred_at "
                                 "(default: the file's modification time).")
        parser.add_argument("--async", action="store_true", dest="run_async",
                            help="Store the events and leave processing to the workers.")
        parser.add_argument("--progress-every", type=int, default=1000, help="Progress line every N rows.")
        parser.add_argument("--json", action="store_true", help="Last stdout line: the summary as JSON.")

    def handle(self, *args, **options):
        occurred_at = None
        if options["occurred_at"]:
            occurred_at = parse_datetime(options["occurred_at"].replace("Z", "+00:00"))
            if occurred_at is None or occurred_at.tzinfo is None:
                raise CommandError("--occurred-at must be an ISO 8601 date-time with a timezone, e.g. 2026-01-14T10:00Z")
            occurred_at = occurred_at.astimezone(timezone.utc)
        verbosity = options["verbosity"]
        out = self.stderr if options["json"] else self.stdout

        def progress(summary):
            if verbosity >= 1:
                out.write(f"{summary.rows} rows: {summary.accepted} accepted, {summary.duplicates} duplicates, "
                          f"{summary.rejected} rejected")

        def on_reject(line, reason):
            if verbosity >= 1:
                self.stderr.write(f"line {line}: rejected: {reason}")

        if options["progress_every"] < 1:
            raise CommandError("--progress-every must be at least 1")
        try:
            summary = customers_import(
                source_name=options["source"], path=options["file"], fmt=options["format"],
                schema_version=options["schema_version"], occurred_at=occurred_at, run_async=options["run_async"],
                progress=progress, progress_every=options["progress_every"], on_reject=on_reject,
            )
        except ReconciliationError as exc:
            raise CommandError(str(exc)) from exc
        for failure in summary.failures:
            if verbosity >= 1:
                self.stderr.write(f"line {failure['line']}: processing failed (inbox event {failure['inbox_event']}): "
                                  f"{failure['reason']}")
        merged = "after processing by the workers" if summary.merged is None else str(summary.merged)
        handled = (f"{summary.queued} queued for the workers" if options["run_async"]
                   else f"{summary.processed} processed, {summary.failed} failed")
        out.write(f"{summary.rows} rows: {summary.accepted} accepted ({handled}), {summary.duplicates} duplicates, "
                  f"{summary.rejected} rejected, {summary.warnings} warnings; customers merged: {merged}")
        if options["json"]:
            self.stdout.write(json.dumps(summary.as_json()))
