"""manage.py export_customers [--output FILE] [--include-deleted]: golden records as JSON lines."""

import json

from django.core.management.base import BaseCommand, CommandError

from canonical.selectors import customer_export_rows

PROGRESS_EVERY = 1000


class Command(BaseCommand):
    help = ("Write every golden record as one JSON object per line (DESIGN.md's export keys) to stdout or "
            "--output. Tombstones (erased or merged away) only with --include-deleted. Streams in chunks.")

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="File to write (default: stdout).")
        parser.add_argument("--include-deleted", action="store_true",
                            help='Also export tombstones (erased or merged records, "deleted": true).')
        parser.add_argument("--chunk-size", type=int, default=500, help="Rows fetched per database round trip.")

    def handle(self, *args, output=None, include_deleted=False, chunk_size=500, verbosity=1, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        try:
            stream = open(output, "w", encoding="utf-8") if output else self.stdout
        except OSError as error:
            raise CommandError(f"cannot open --output {output}: {error.strerror}") from None
        count = 0
        try:
            for row in customer_export_rows(include_deleted=include_deleted, chunk_size=chunk_size):
                stream.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
                count += 1
                if verbosity >= 2 and count % PROGRESS_EVERY == 0:
                    self.stderr.write(f"{count} customers exported")
        finally:
            if output:
                stream.close()
            else:
                stream.flush()
        if verbosity >= 1:
            self.stderr.write(f"exported {count} customers" + (f" to {output}" if output else ""))
