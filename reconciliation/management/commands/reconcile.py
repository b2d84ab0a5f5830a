"""manage.py reconcile [--target NAME] [--fix] [--dry-run] [--json]: one call into the service."""

import json

from django.core.management.base import BaseCommand, CommandError

from reconciliation.models import COUNT_CLASSES, ReconciliationError, ReconciliationRun
from reconciliation.services import CHUNK_SIZE, PAGE_SIZE, PROGRESS_EVERY, targets_reconcile


class Command(BaseCommand):
    help = ("Compare the golden records with each target's listing (cdp, crm; webhook targets have none), "
            "store a report per target and, with --fix, queue the fixes through the outbox. "
            "With --json the last line of stdout is {\"runs\": [...]}. Exit status 1 when a run failed.")

    def add_arguments(self, parser):
        parser.add_argument("--target", help="Only this target (default: every enabled target).")
        parser.add_argument("--fix", action="store_true",
                            help="Queue upserts for missing/drifted records and deletes for orphans of erased or "
                                 "merged customers (normal delivery path).")
        parser.add_argument("--dry-run", action="store_true", help="Compare and print; store nothing, fix nothing.")
        parser.add_argument("--json", action="store_true",
                            help="Print a JSON summary as the last line of stdout (progress then goes to stderr).")
        parser.add_argument("--page-size", type=int, default=PAGE_SIZE, help="Records per listing request.")
        parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE, help="Rows per database step.")
        parser.add_argument("--progress-every", type=int, default=PROGRESS_EVERY,
                            help="Print progress every N records (verbosity >= 1).")

    def handle(self, *args, **options):
        as_json, verbosity = options["json"], options["verbosity"]
        out = self.stderr if as_json else self.stdout

        def progress(event):
            if verbosity < 1:
                return
            counts = " ".join(f"{k}={v}" for k, v in event["counts"].items())
            done = event["listed"] if event["phase"] == "listing" else event["scanned"]
            out.write(f"[{event['target']}] {event['phase']}: {done} records, {event['rate']:.0f}/s, "
                      f"{event['elapsed']:.1f} s" + (f" | {counts}" if event["phase"] == "comparing" else ""))

        for name in ("page_size", "chunk_size", "progress_every"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        try:
            outcomes = targets_reconcile(
                target_name=options["target"], fix=options["fix"], dry_run=options["dry_run"], trigger="command",
                page_size=options["page_size"], chunk_size=options["chunk_size"], progress=progress,
                progress_every=options["progress_every"],
            )
        except ReconciliationError as exc:
            raise CommandError(str(exc)) from exc

        for outcome in outcomes:
            if verbosity >= 1 or outcome.status == ReconciliationRun.Status.FAILED:
                out.write(self._summary(outcome))
        if as_json:
            self.stdout.write(json.dumps({"runs": [o.as_json() for o in outcomes]}, sort_keys=False))
        failed = [o.target for o in outcomes if o.status == ReconciliationRun.Status.FAILED]
        if failed:
            raise CommandError(f"reconciliation failed for {', '.join(failed)}")

    def _summary(self, outcome) -> str:
        head = f"{outcome.target}: {outcome.status}"
        if outcome.run_id:
            head += f" (run {outcome.run_id})"
        if outcome.dry_run:
            head += " [dry run: nothing stored]"
        if outcome.status != ReconciliationRun.Status.SUCCEEDED:
            return f"{head}: {outcome.error or outcome.note}"
        parts = []
        for klass in COUNT_CLASSES:
            subs = outcome.sub_counts.get(klass.value) or {}
            detail = f" ({', '.join(f'{k} {v}' for k, v in sorted(subs.items()))})" if subs else ""
            parts.append(f"{klass.value} {outcome.counts[klass.value]}{detail}")
        fix = f"; fixes queued: {outcome.fixes_queued}" if outcome.fixed else ""
        error = f"; {outcome.error}" if outcome.error else ""
        return (f"{head} in {outcome.duration_seconds:.1f} s, {outcome.records_listed} target records, "
                f"{outcome.golden_scanned} golden records: " + "; ".join(parts) + fix + error)
