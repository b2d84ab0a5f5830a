"""Batch import: a source system's CSV or JSONL export, row by row, through the webhook path.

Each accepted row becomes an `InboxEvent` of that source with a stable dedup
key and is processed exactly like a webhook (`inbox_event_process`: same
mappers, normalizers, rules, identity resolution, outbox), synchronously or,
with `run_async`, by the workers' inbox pump (in batches). The file is streamed: memory holds one row.

Decisions (README, "Reconciliation and batch import"):
- occurred_at: the row's `occurred_at` (CSV column / envelope field), else
  the `occurred_at` argument, else the file's modification time (UTC).
- dedup key: `import:<sha256 of [source, schema_version, type, occurred_at, data]>`
  (canonical JSON), or the envelope's own `event_id`. The same file imported
  twice is all duplicates; a row that changes later gets a new key.
- Stricter than webhooks: a row with an error-level normalization problem
  (bad email, impossible phone, ...) is rejected as a whole with its line
  number, because a file can be corrected and imported again; a webhook
  cannot be refused after the fact. Warnings are accepted.
- CSV: header row, columns `<system>_id`, email, phone, first_name,
  last_name, locale, marketing_opt_in (true/false/1/0/yes/no),
  marketing_opt_in_at, optional occurred_at; an empty cell means "not in this
  row" (never a clear). JSONL: one object per line, either a `data` object of
  `schema_version` or a full envelope (it has `type` and `data`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from django.db import IntegrityError, transaction

from canonical.events import EVENT_TYPES, UPSERT
from canonical.exceptions import MappingError
from canonical.fields import BY_NAME, FLAT_PATCH_FIELDS, Kind
from canonical.identity import Identifiers
from canonical.mappers import map_data
from canonical.models import MergeLog
from canonical.patch import patch_normalize
from core.times import iso_z
from webhooks.envelope import envelope_validate, json_object_parse
from webhooks.errors import WebhookError
from webhooks.models import InboxEvent, Source
from webhooks.processing import inbox_event_process, inbox_pump_kick

from .models import ReconciliationError

IMPORT_PREFIX = "import:"
FORMATS = ("csv", "jsonl")
CSV_FIELDS = FLAT_PATCH_FIELDS  # schema v1's flat keys: every patch field but the addresses list
_ID_COLUMN = re.compile(r"[a-z][a-z0-9_]*_id")
_TRUE, _FALSE = {"true", "1", "yes", "y", "t"}, {"false", "0", "no", "n", "f"}
MAX_LINE_BYTES = 256 * 1024  # the webhook body limit, per line
REJECTIONS_KEPT = 200
MERGE_BATCH = 500


class RowError(Exception):
    """This row is rejected; the message says why (never the row's values)."""


@dataclass
class Row:
    line: int
    type: str
    schema_version: int
    occurred_at: datetime
    data: dict
    event_id: str | None = None


@dataclass
class ImportSummary:
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    processed: int = 0
    failed: int = 0
    queued: int = 0
    merged: int | None = 0
    warnings: int = 0
    rejections: list[dict] = field(default_factory=list)  # the first REJECTIONS_KEPT: {line, reason}
    failures: list[dict] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected,
            "processed": self.processed, "failed": self.failed, "queued": self.queued, "merged": self.merged,
            "warnings": self.warnings, "rejections": self.rejections, "failures": self.failures,
        }


def format_guess(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ReconciliationError(f"cannot tell the format of {path.name}; pass --format csv or --format jsonl")


def _parse_when(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RowError("occurred_at is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise RowError("occurred_at has no timezone (e.g. 2026-01-14T10:12:00Z)")
    return parsed.astimezone(timezone.utc)


def dedup_key(*, source: str, row: Row) -> str:
    canonical = json.dumps([source, row.schema_version, row.type, iso_z(row.occurred_at), row.data],
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return IMPORT_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- reading -------------------------------------------------------------------------

def _csv_rows(handle, *, schema_version: int, occurred_at: datetime) -> Iterator[Row | tuple[int, str]]:
    if schema_version != 1:
        raise ReconciliationError("CSV rows are schema v1 data (flat columns); use --schema-version 1")
    reader = csv.reader(handle, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise ReconciliationError(f"line 1: the CSV header cannot be read: {exc}") from None
    header = [h.strip() for h in header]
    unknown = [h for h in header if h not in CSV_FIELDS and h != "occurred_at" and not _ID_COLUMN.fullmatch(h)]
    if unknown or len(set(header)) != len(header) or not header:
        raise ReconciliationError(
            f"CSV header: unknown or repeated columns {', '.join(unknown) or '(repeated)'}; allowed: <system>_id, "
            f"{', '.join(CSV_FIELDS)}, occurred_at")
    while True:  # until the file ends
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, f"bad CSV row: {exc}"
            continue
        if not cells or all(not c.strip() for c in cells):
            continue  # blank line
        if len(cells) != len(header):
            yield line, f"bad CSV row: {len(cells)} fields, the header has {len(header)}"
            continue
        try:
            data: dict[str, Any] = {}
            when = occurred_at
            for name, raw in zip(header, cells):
                value = raw.strip()
                if value == "":
                    continue  # empty cell: not in this row (never a clear)
                if name == "occurred_at":
                    when = _parse_when(value)
                elif name in BY_NAME and BY_NAME[name].kind == Kind.CONSENT:
                    if value.lower() not in _TRUE | _FALSE:
                        raise RowError(f"{name} must be true/false (or 1/0, yes/no)")
                    data[name] = value.lower() in _TRUE
                else:
                    data[name] = value
        except RowError as exc:
            yield line, str(exc)
            continue
        yield Row(line=line, type=UPSERT, schema_version=1, occurred_at=when, data=data)


def _jsonl_rows(handle, *, source, schema_version: int, occurred_at: datetime) -> Iterator[Row | tuple[int, str]]:
    for line_number, raw in enumerate(handle, start=1):
        if len(raw) > MAX_LINE_BYTES:
            yield line_number, f"line longer than {MAX_LINE_BYTES} bytes"
            continue
        if not raw.strip():
            continue
        try:
            obj = json_object_parse(raw.strip())
        except WebhookError as exc:
            yield line_number, f"invalid JSON: {exc.message}"
            continue
        if isinstance(obj.get("data"), dict) and "type" in obj:
            try:
                envelope = envelope_validate({"source": source.name, **obj})
            except WebhookError as exc:
                yield line_number, f"invalid envelope: {exc.message}"
                continue
            if envelope.source != source.name:
                yield line_number, f"envelope source {envelope.source!r} is not the imported source {source.name!r}"
                continue
            if envelope.type not in EVENT_TYPES or envelope.type not in source.event_types:
                yield line_number, f"type {envelope.type!r} is not accepted from source {source.name!r}"
                continue
            if envelope.schema_version not in source.schema_versions:
                yield line_number, f"schema_version {envelope.schema_version} is not accepted from {source.name!r}"
                continue
            yield Row(line=line_number, type=envelope.type, schema_version=envelope.schema_version,
                      occurred_at=envelope.occurred_at, data=envelope.data, event_id=envelope.event_id)
        else:
            yield Row(line=line_number, type=UPSERT, schema_version=schema_version, occurred_at=occurred_at, data=obj)


def _validate(row: Row, *, region: str) -> int:
    """Map and normalize like the pipeline will; reject what it would refuse. Returns the warning count."""
    try:
        patch = patch_normalize(raw=map_data(schema_version=row.schema_version, data=row.data), default_region=region)
    except MappingError as exc:
        raise RowError(f"cannot be mapped: {exc}") from None
    errors = [p for p in patch.problems if p.get("severity", "error") == "error"]
    if errors:
        raise RowError("; ".join(f"{p['field']}: {p['message']}" for p in errors[:5]))
    if not Identifiers.from_patch(patch):
        raise RowError("no identifier (an external id, email or phone)")
    return len(patch.problems)


# --- the service ----------------------------------------------------------------------

def customers_import(*, source_name: str, path: str | Path, fmt: str | None = None, schema_version: int = 1,
                     occurred_at: datetime | None = None, run_async: bool = False,
                     progress: Callable[[ImportSummary], None] | None = None, progress_every: int = 1000,
                     on_reject: Callable[[int, str], None] | None = None) -> ImportSummary:
    """Import one export file of `source_name`; see the module docstring for the rules."""
    source = Source.objects.filter(name=source_name).first()
    if source is None:
        raise ReconciliationError(f"no source named {source_name!r}")
    if not source.enabled:
        raise ReconciliationError(f"source {source_name!r} is disabled")
    path = Path(path)
    if not path.is_file():
        raise ReconciliationError(f"{path} is not a readable file")
    fmt = fmt or format_guess(path)
    if fmt not in FORMATS:
        raise ReconciliationError(f"unknown format {fmt!r}; expected csv or jsonl")
    if schema_version not in source.schema_versions:
        raise ReconciliationError(f"schema_version {schema_version} is not accepted from source {source_name!r} "
                                  f"(accepted: {', '.join(map(str, source.schema_versions))})")
    if occurred_at is None:
        occurred_at = datetime.fromtimestamp(os.stat(path).st_mtime, tz=timezone.utc)

    summary = ImportSummary()
    merge_buffer: list[str] = []

    def reject(line: int, reason: str) -> None:
        summary.rejected += 1
        if len(summary.rejections) < REJECTIONS_KEPT:
            summary.rejections.append({"line": line, "reason": reason})
        if on_reject:
            on_reject(line, reason)

    def flush_merges() -> None:
        if merge_buffer:
            summary.merged += MergeLog.objects.filter(event_id__in=merge_buffer).count()
            merge_buffer.clear()

    if fmt == "csv":
        handle = open(path, newline="", encoding="utf-8-sig", errors="strict")
        rows = _csv_rows(handle, schema_version=schema_version, occurred_at=occurred_at)
    else:
        handle = open(path, "rb")
        rows = _jsonl_rows(handle, source=source, schema_version=schema_version, occurred_at=occurred_at)
    try:
        for item in _decoded(rows):
            summary.rows += 1
            if isinstance(item, tuple):
                reject(*item)
            else:
                _import_row(item, source=source, summary=summary, reject=reject, run_async=run_async,
                            merge_buffer=merge_buffer)
                if len(merge_buffer) >= MERGE_BATCH:
                    flush_merges()
            if summary.rows % progress_every == 0:
                if run_async and summary.queued:
                    inbox_pump_kick(immediately=True)  # the workers start on what is stored so far
                if progress:
                    progress(summary)
    finally:
        handle.close()
        if run_async and summary.queued:
            inbox_pump_kick(immediately=True)
    flush_merges()
    if run_async:
        summary.merged = None  # decided later by the workers
    return summary


def _decoded(rows):
    """Turn a decoding error of the file into one rejected row instead of an aborted import."""
    try:
        yield from rows
    except UnicodeDecodeError as exc:
        yield 0, f"the file is not valid UTF-8 (byte offset {exc.start} of the current read); import stopped there"


def _import_row(row: Row, *, source, summary: ImportSummary, reject, run_async: bool,
                merge_buffer: list[str]) -> None:
    try:
        summary.warnings += _validate(row, region=source.default_region)
    except RowError as exc:
        reject(row.line, str(exc))
        return
    event_id = row.event_id or dedup_key(source=source.name, row=row)
    envelope = {"event_id": event_id, "source": source.name, "schema_version": row.schema_version,
                "type": row.type, "occurred_at": iso_z(row.occurred_at), "data": row.data}
    if InboxEvent.objects.filter(source=source, event_id=event_id).exists():
        summary.duplicates += 1
        return
    try:
        with transaction.atomic():
            event = InboxEvent.objects.create(
                source=source, event_id=event_id, event_id_provided=row.event_id is not None, type=row.type,
                schema_version=row.schema_version, occurred_at=row.occurred_at, payload=envelope,
            )
    except IntegrityError:
        if InboxEvent.objects.filter(source=source, event_id=event_id).exists():
            summary.duplicates += 1  # imported concurrently (or a webhook with the same event id)
            return
        raise
    summary.accepted += 1
    if run_async:
        summary.queued += 1  # the inbox pump takes it (woken every progress_every rows and at the end)
        return
    outcome = inbox_event_process(event.pk)
    if outcome == "processed":
        summary.processed += 1
        merge_buffer.append(event_id)
    else:
        summary.failed += 1
        error = InboxEvent.objects.filter(pk=event.pk).values_list("last_error", flat=True).first() or outcome
        if len(summary.failures) < REJECTIONS_KEPT:
            summary.failures.append({"line": row.line, "reason": error[:300], "inbox_event": event.pk})
