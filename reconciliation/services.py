"""Reconciliation: golden records vs each target's listing -> report, optional fix.

One method (`target_reconcile`) is behind the `reconcile` command, the
nightly task and the admin (NetBox style). Memory stays flat whatever the
customer count:

1. listing: the target's records are streamed page by page
   (`adapter.iter_records`) into `SpilledRecord` rows keyed by golden id,
   written in chunks; nothing assumes the listing is ordered;
2. comparing: golden records (tombstones included) are read in id order in
   chunks (keyset pagination); for each chunk's id range the spilled rows
   and the `DeliveredState` rows of the same range are read, so it is a
   merge join with one chunk of each side in memory;
3. discrepancies are written per chunk; counts are kept as integers.

The lock: a run row in status `running` (a partial unique constraint allows
one per target) with a lease the run renews; a run whose lease has expired
(its process died) is marked failed by the next run, which then starts clean.
A dry run takes no lock and stores nothing (its scratch rows are deleted).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Iterable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from canonical.changes import CustomerChange
from canonical.models import Customer
from canonical.selectors import customer_snapshot
from canonical.services import customer_versions_bump
from targets.adapters import adapter_for
from targets.models import DeliveredState, OutboxMessage, Target
from targets.services import outbox_enqueue

from .compare import (
    comparable, compared_fields, differing_fields, drift_sub_class, normalize_value, record_sub_class, value_excerpt,
)
from .models import (
    COUNT_CLASSES, Discrepancy, DiscrepancyClass, ReconciliationError, ReconciliationRun, SpilledRecord, SubClass,
)
from .selectors import discrepancy_fix_skip_reason

logger = logging.getLogger(__name__)

__all__ = [
    "ReconciliationError", "RunOutcome", "FixResult", "targets_reconcile", "target_reconcile",
    "discrepancies_fix", "runs_purge",
]

Status = ReconciliationRun.Status
C = DiscrepancyClass

PAGE_SIZE = 500  # records per listing request
CHUNK_SIZE = 1000  # golden records / spilled rows per step
LEASE_SECONDS = 300
PROGRESS_EVERY = 10_000
RENEW_EVERY_SECONDS = 30.0
SPILL_MAX_AGE = timedelta(hours=12)
ERROR_CHARS = 2000

Progress = Callable[[dict], None]


@dataclass
class RunOutcome:
    """What one target's reconciliation came to (the command's `--json` run object)."""

    target: str
    status: str  # succeeded | failed | skipped (skipped runs are not stored)
    counts: dict[str, int | None] = field(default_factory=lambda: {k.value: None for k in COUNT_CLASSES})
    sub_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    fixed: bool = False
    fixes_queued: int = 0
    run_id: int | None = None
    dry_run: bool = False
    duration_seconds: float | None = None
    records_listed: int = 0
    golden_scanned: int = 0
    error: str = ""
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target, "status": self.status, "counts": self.counts, "fixed": self.fixed,
            "fixes_queued": self.fixes_queued, "sub_counts": self.sub_counts, "run_id": self.run_id,
            "dry_run": self.dry_run, "duration_seconds": self.duration_seconds,
            "records_listed": self.records_listed, "golden_scanned": self.golden_scanned,
            "error": self.error, "note": self.note,
        }


@dataclass
class FixResult:
    queued: int = 0  # outbox messages written (created or coalesced)
    fixed: int = 0  # discrepancies marked fixed
    fixed_ids: list[int] = field(default_factory=list)  # their ids (the admin logs one entry each)
    skipped: Counter = field(default_factory=Counter)  # reason -> count


# --- entry points -----------------------------------------------------------------

def targets_reconcile(*, target_name: str | None = None, fix: bool = False, dry_run: bool = False,
                      trigger: str = "command", page_size: int = PAGE_SIZE, chunk_size: int = CHUNK_SIZE,
                      progress: Progress | None = None, progress_every: int = PROGRESS_EVERY) -> list[RunOutcome]:
    """Reconcile one named target or every enabled target; one outcome per target."""
    if fix and dry_run:
        raise ReconciliationError("--fix and --dry-run exclude each other")
    targets = Target.objects.order_by("name")
    if target_name:
        targets = list(targets.filter(name=target_name))
        if not targets:
            raise ReconciliationError(f"no target named {target_name!r}")
    else:
        targets = list(targets.filter(enabled=True))
    return [
        target_reconcile(target=target, fix=fix, dry_run=dry_run, trigger=trigger, page_size=page_size,
                         chunk_size=chunk_size, progress=progress, progress_every=progress_every)
        for target in targets
    ]


def target_reconcile(*, target: Target, fix: bool = False, dry_run: bool = False, trigger: str = "command",
                     page_size: int = PAGE_SIZE, chunk_size: int = CHUNK_SIZE,
                     progress: Progress | None = None, progress_every: int = PROGRESS_EVERY) -> RunOutcome:
    """Compare the golden records with one target; store the run (unless dry) and optionally fix."""
    outcome = RunOutcome(target=target.name, status="skipped", dry_run=dry_run)  # not a run status: nothing stored
    if not target.enabled:
        outcome.note = "target is disabled"
        return outcome
    adapter = adapter_for(target)
    if not getattr(adapter, "supports_listing", True):
        outcome.note = f"{target.kind} targets have no listing endpoint; nothing to compare"
        return outcome

    _spill_sweep()
    owner = uuid.uuid4().hex[:16]
    run = None
    if not dry_run:
        run, holder = _run_start(target=target, owner=owner, trigger=trigger, fix=fix)
        if run is None:
            outcome.note = f"another reconciliation of {target.name} is running (run {holder}); skipped"
            return outcome
        outcome.run_id = run.pk
    spill = f"run:{run.pk}" if run else f"dry:{owner}"
    started = time.monotonic()
    job = _Job(target=target, adapter=adapter, run=run, owner=owner, spill=spill, page_size=page_size,
               chunk_size=max(1, chunk_size), progress=progress, started=started,
               progress_every=max(1, progress_every))
    try:
        job.list_into_spill()
        job.compare()
    except Exception as exc:  # noqa: BLE001 - any failure: recorded on the run, never half-presented
        outcome.status = Status.FAILED.value
        outcome.error = _error_text(exc, job)
        outcome.duration_seconds = round(time.monotonic() - started, 3)
        outcome.records_listed, outcome.golden_scanned = job.listed, job.scanned
        if run is not None:
            _run_fail(run=run, owner=owner, error=outcome.error, duration=outcome.duration_seconds, job=job)
        logger.warning("reconciliation of %s failed: %s", target.name, outcome.error)
        return outcome
    finally:
        _spill_delete(spill=spill)

    outcome.status = Status.SUCCEEDED.value
    outcome.counts = {k.value: job.counts[k.value] for k in COUNT_CLASSES}
    outcome.sub_counts = {k: dict(v) for k, v in sorted(job.sub_counts.items())}
    outcome.records_listed, outcome.golden_scanned = job.listed, job.scanned
    outcome.duration_seconds = round(time.monotonic() - started, 3)
    if run is None:
        return outcome

    ReconciliationRun.objects.filter(pk=run.pk, lease_owner=owner).update(
        status=Status.SUCCEEDED, finished_at=timezone.now(), counts=outcome.counts, sub_counts=outcome.sub_counts,
        records_listed=job.listed, golden_scanned=job.scanned, duration_seconds=outcome.duration_seconds,
        lease_owner="", lease_expires_at=None, updated_at=timezone.now(),
    )
    if fix:
        try:
            result = _run_fix(run=run)
            outcome.fixed, outcome.fixes_queued = True, result.queued
        except Exception as exc:  # noqa: BLE001 - the report stands; say the fix did not complete
            outcome.error = f"fix failed: {type(exc).__name__}: {exc}"[:ERROR_CHARS]
            ReconciliationRun.objects.filter(pk=run.pk).update(error=outcome.error)
            logger.exception("reconciliation fix of %s failed", target.name)
    runs_purge(target_id=target.pk)
    return outcome


# --- the run row: lock, lease, failure ------------------------------------------

def _run_start(*, target: Target, owner: str, trigger: str, fix: bool) -> tuple[ReconciliationRun | None, int | None]:
    """Create the running run, or (None, holder id) when another live run holds the target."""
    now = timezone.now()
    stale = list(ReconciliationRun.objects.filter(target=target, status=Status.RUNNING, lease_expires_at__lt=now)
                 .values_list("pk", flat=True))
    for pk in stale:
        # Its process died (killed, OOM, machine gone): fail it so that a new run can start clean.
        updated = ReconciliationRun.objects.filter(pk=pk, status=Status.RUNNING, lease_expires_at__lt=now).update(
            status=Status.FAILED, finished_at=now, lease_owner="", lease_expires_at=None, counts={}, sub_counts={},
            error="the process running it stopped (lease expired); partial results were discarded",
        )
        if updated:
            _discrepancies_delete(run_id=pk)
            _spill_delete(spill=f"run:{pk}")
    try:
        with transaction.atomic():
            run = ReconciliationRun.objects.create(
                target=target, status=Status.RUNNING, started_at=now, lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=LEASE_SECONDS), fix_requested=fix, trigger=trigger[:32],
            )
    except IntegrityError:
        holder = ReconciliationRun.objects.filter(target=target, status=Status.RUNNING).values_list("pk", flat=True).first()
        return None, holder
    return run, None


def _lease_renew(*, run: ReconciliationRun, owner: str) -> None:
    now = timezone.now()
    if not ReconciliationRun.objects.filter(pk=run.pk, status=Status.RUNNING, lease_owner=owner).update(
        lease_expires_at=now + timedelta(seconds=LEASE_SECONDS), updated_at=now,
    ):
        raise ReconciliationError("lost the run's lease (another process marked it failed); stopping")


def _run_fail(*, run: ReconciliationRun, owner: str, error: str, duration: float, job: "_Job") -> None:
    # No partial counts: a failed run shows its reason and how far it got, nothing that looks complete.
    _discrepancies_delete(run_id=run.pk)
    ReconciliationRun.objects.filter(pk=run.pk, lease_owner=owner).update(
        status=Status.FAILED, finished_at=timezone.now(), error=error, duration_seconds=duration, counts={},
        sub_counts={}, records_listed=job.listed, golden_scanned=job.scanned, lease_owner="",
        lease_expires_at=None, updated_at=timezone.now(),
    )


def _error_text(exc: Exception, job: "_Job") -> str:
    import requests

    phase = "listing the target" if job.phase == "listing" else "comparing"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        detail = f"HTTP {exc.response.status_code} from the target's list endpoint"
    elif isinstance(exc, requests.Timeout):
        detail = f"timeout after {job.target.timeout_seconds:g} s"
    elif isinstance(exc, requests.ConnectionError):
        detail = "connection error (target down or unreachable)"
    else:
        # Exception texts here name variables or statuses, never secret values (see core.secrets).
        detail = f"{type(exc).__name__}: {exc}"
    return f"failed while {phase} after {job.listed} records listed, {job.scanned} golden records compared: {detail}"[:ERROR_CHARS]


def _discrepancies_delete(*, run_id: int, batch: int = 5000) -> None:
    for _ in range(1_000_000):  # bounded
        pks = list(Discrepancy.objects.filter(run_id=run_id).values_list("pk", flat=True)[:batch])
        if not pks:
            return
        Discrepancy.objects.filter(pk__in=pks).delete()


def _spill_delete(*, spill: str, batch: int = 5000) -> None:
    for _ in range(1_000_000):  # bounded
        pks = list(SpilledRecord.objects.filter(spill=spill).values_list("pk", flat=True)[:batch])
        if not pks:
            return
        SpilledRecord.objects.filter(pk__in=pks).delete()


def _spill_sweep() -> None:
    """Scratch rows left by a process that died in a dry run (real runs clean up through their lease)."""
    old = timezone.now() - SPILL_MAX_AGE
    for spill in SpilledRecord.objects.filter(created_at__lt=old).values_list("spill", flat=True).distinct()[:100]:
        _spill_delete(spill=spill)


def runs_purge(*, target_id: int, keep: int | None = None, batch: int = 5000) -> int:
    """Keep the newest `keep` finished runs of a target (RECONCILE_KEEP_RUNS, default 30); delete older in batches."""
    keep = keep if keep is not None else getattr(settings, "RECONCILE_KEEP_RUNS", 30)
    finished = ReconciliationRun.objects.filter(target_id=target_id).exclude(status=Status.RUNNING)
    old = list(finished.order_by("-started_at", "-id").values_list("pk", flat=True)[keep:keep + 1000])
    for pk in old:
        _discrepancies_delete(run_id=pk, batch=batch)
    ReconciliationRun.objects.filter(pk__in=old).delete()
    return len(old)


# --- one run's work -----------------------------------------------------------------

@dataclass
class _Job:
    target: Target
    adapter: Any
    run: ReconciliationRun | None
    owner: str
    spill: str
    page_size: int
    chunk_size: int
    progress: Progress | None
    started: float
    phase: str = "listing"
    listed: int = 0
    scanned: int = 0
    counts: Counter = field(default_factory=Counter)
    sub_counts: dict = field(default_factory=lambda: defaultdict(Counter))
    fields: list[str] = field(default_factory=list)
    progress_every: int = PROGRESS_EVERY
    _last_report: int = 0
    _last_renew: float = 0.0

    # progress and lease ----------------------------------------------------
    def _report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.run is not None and (force or now - self._last_renew >= RENEW_EVERY_SECONDS):
            _lease_renew(run=self.run, owner=self.owner)
            self._last_renew = now
        done = self.listed if self.phase == "listing" else self.scanned
        if self.progress is None or not (force or done - self._last_report >= self.progress_every):
            return
        self._last_report = done
        elapsed = max(now - self.started, 1e-6)
        self.progress({
            "target": self.target.name, "phase": self.phase, "listed": self.listed, "scanned": self.scanned,
            "counts": {k.value: self.counts[k.value] for k in COUNT_CLASSES}, "elapsed": round(elapsed, 1),
            "rate": round(done / elapsed, 1), "done": force,
        })

    # phase 1 ----------------------------------------------------------------
    def list_into_spill(self) -> None:
        self.fields = compared_fields(self.adapter.mappings())
        batch: list[SpilledRecord] = []
        for record in self.adapter.iter_records(page_size=self.page_size):
            canonical = self.adapter.record_to_canonical(record) if isinstance(record, dict) else {}
            golden_id = canonical.get("id")
            if isinstance(golden_id, bool) or not isinstance(golden_id, int) or golden_id <= 0 or golden_id >= 2**63:
                golden_id = None
            key = canonical.get("id") if canonical.get("id") is not None else (
                record.get("id") if isinstance(record, dict) else None)
            batch.append(SpilledRecord(spill=self.spill, golden_id=golden_id, record_key=str(key or "")[:200],
                                       fields=comparable(canonical, self.fields)))
            self.listed += 1
            if len(batch) >= self.chunk_size:
                SpilledRecord.objects.bulk_create(batch)
                batch = []
                self._report()
        if batch:
            SpilledRecord.objects.bulk_create(batch)
        self._report(force=True)

    # phase 2 ----------------------------------------------------------------
    def compare(self) -> None:
        self.phase = "comparing"
        self._last_report = 0
        spilled = SpilledRecord.objects.filter(spill=self.spill)
        last_id = 0
        for _ in range(10**9):  # bounded: every step advances last_id
            customers = list(
                Customer.objects.filter(pk__gt=last_id).order_by("pk").prefetch_related("external_ids")[: self.chunk_size]
            )
            if not customers:
                break
            high = customers[-1].pk
            records: dict[int, list[SpilledRecord]] = defaultdict(list)
            for row in spilled.filter(golden_id__gt=last_id, golden_id__lte=high).order_by("golden_id", "pk"):
                records[row.golden_id].append(row)
            delivered = {
                state.customer_id: state
                for state in DeliveredState.objects.filter(target=self.target, customer_id__gt=last_id,
                                                            customer_id__lte=high)
            }
            found: list[Discrepancy] = []
            for customer in customers:
                found.extend(self._classify(customer, records.pop(customer.pk, []), delivered.get(customer.pk)))
                self.scanned += 1
            for rows in records.values():  # ids inside the range without any golden record (never existed)
                found.extend(self._orphan(row, customer_id=None, sub=SubClass.UNKNOWN) for row in rows)
            self._write(found)
            last_id = high
            self._report()
        # Target records beyond the last golden id, or without a usable golden id.
        for rows in self._spill_chunks(spilled.filter(Q(golden_id__gt=last_id) | Q(golden_id__isnull=True))):
            self._write([self._orphan(row, customer_id=None, sub=SubClass.UNKNOWN) for row in rows])
        self._report(force=True)

    def _spill_chunks(self, queryset) -> Iterable[list[SpilledRecord]]:
        last_pk = 0
        for _ in range(10**9):  # bounded: every step advances last_pk
            rows = list(queryset.filter(pk__gt=last_pk).order_by("pk")[: self.chunk_size])
            if not rows:
                return
            last_pk = rows[-1].pk
            yield rows

    def _write(self, found: list[Discrepancy]) -> None:
        if self.run is not None and found:
            Discrepancy.objects.bulk_create(found, batch_size=500)

    def _count(self, klass: str, sub: str = "") -> None:
        self.counts[klass] += 1
        if sub:
            self.sub_counts[klass][sub] += 1

    def _orphan(self, row: SpilledRecord, *, customer_id: int | None, sub: str,
                golden_version: int | None = None) -> Discrepancy:
        self._count(C.ORPHAN_IN_TARGET, sub)
        return Discrepancy(run=self.run, customer_id=customer_id, target_record_id=row.record_key,
                           klass=C.ORPHAN_IN_TARGET, sub_class=sub, golden_version=golden_version)

    def _classify(self, customer: Customer, rows: list[SpilledRecord],
                  state: DeliveredState | None) -> list[Discrepancy]:
        if customer.is_deleted:
            sub = SubClass.MERGED if customer.merged_into_id else SubClass.ERASED
            return [self._orphan(row, customer_id=customer.pk, sub=sub, golden_version=customer.version) for row in rows]
        snapshot = customer_snapshot(customer=customer)
        golden = comparable(self.adapter.record_to_canonical(self.adapter.build_body(snapshot)), self.fields)
        delivered_version = state.version if state is not None else None
        if not rows:
            if state is None:
                sub = SubClass.NEVER_DELIVERED
            elif state.operation == OutboxMessage.Operation.UPSERT:
                sub = SubClass.DELETED_IN_TARGET
            else:
                sub = SubClass.DELIVERY_BEHIND
            self._count(C.MISSING_IN_TARGET, sub)
            return [Discrepancy(run=self.run, customer_id=customer.pk, target_record_id="", klass=C.MISSING_IN_TARGET,
                                sub_class=sub, golden_version=customer.version, delivered_version=delivered_version)]
        found = [self._orphan(row, customer_id=customer.pk, sub=SubClass.DUPLICATE, golden_version=customer.version)
                 for row in rows[1:]]
        row = rows[0]
        target = row.fields or {}
        names = differing_fields(golden, target, self.fields)
        if not names:
            self._count(C.IN_SYNC)
            return found
        has_delivered = state is not None and state.operation == OutboxMessage.Operation.UPSERT and state.body is not None
        delivered = comparable(self.adapter.record_to_canonical(state.body), self.fields) if has_delivered else {}
        values, subs = {}, []
        for name in names:
            target_value = normalize_value(name, target.get(name))
            delivered_value = normalize_value(name, delivered.get(name)) if has_delivered else None
            sub = drift_sub_class(golden=golden.get(name), delivered=delivered_value, target=target_value,
                                  has_delivered=has_delivered)
            subs.append(sub)
            values[name] = {"golden": value_excerpt(golden.get(name)), "delivered": value_excerpt(delivered_value),
                            "target": value_excerpt(target.get(name)), "sub_class": sub}
        sub = record_sub_class(subs)
        self._count(C.FIELD_DRIFT, sub)
        found.append(Discrepancy(
            run=self.run, customer_id=customer.pk, target_record_id=row.record_key, klass=C.FIELD_DRIFT,
            sub_class=sub, fields=names, field_names="," + ",".join(names) + ",", values=values,
            golden_version=customer.version, delivered_version=delivered_version,
        ))
        return found


# --- fixing -------------------------------------------------------------------------

def _run_fix(*, run: ReconciliationRun) -> FixResult:
    """Queue the fixes of every fixable discrepancy of a run, in chunks."""
    total = FixResult()
    # discrepancies_fix applies the rule of what is fixable (selectors.discrepancy_fix_skip_reason); the
    # unfixed ones of the run are handed to it as they are.
    unfixed = Discrepancy.objects.filter(run=run, fixed_at__isnull=True)
    last_pk = 0
    for _ in range(10**9):  # bounded: every step advances last_pk
        pks = list(unfixed.filter(pk__gt=last_pk).order_by("pk").values_list("pk", flat=True)[:CHUNK_SIZE])
        if not pks:
            break
        last_pk = pks[-1]
        result = discrepancies_fix(discrepancy_ids=pks)
        total.queued += result.queued
        total.fixed += result.fixed
        total.skipped.update(result.skipped)
    ReconciliationRun.objects.filter(pk=run.pk).update(fixed=True)
    return total


def discrepancies_fix(*, discrepancy_ids: Iterable[int], chunk_size: int = 500) -> FixResult:
    """Queue outbox messages that make the target match the golden record again.

    State transfer, per discrepancy, decided from the golden record *now*: a
    live customer gets an upsert, an erased or merged one a delete, sent to
    that target only, through the normal outbox (rate limit, retries, DLQ),
    with correlation id `reconcile:<run id>`. Orphans that never were golden
    records are not touched (see README, "Reconciliation and batch import"). Already fixed ones are
    skipped, so running it twice queues nothing new. What is fixable is decided in one
    place, `selectors.discrepancy_fix_skip_reason`, here under the customers' locks.

    When the target already acknowledged the golden version (a hand edit in
    the target, a record deleted there), the same version would travel with
    the same Idempotency-Key and a target that honours keys would answer from
    its cache and apply nothing; so the golden version is first bumped by one
    (no data change) to give the fix a key of its own.
    """
    ids = sorted(set(int(pk) for pk in discrepancy_ids))
    result = FixResult()
    for start in range(0, len(ids), chunk_size):
        with transaction.atomic():
            _fix_chunk(ids=ids[start:start + chunk_size], result=result)
    return result


def _fix_chunk(*, ids: list[int], result: FixResult) -> None:
    items = list(Discrepancy.objects.select_related("run__target").filter(pk__in=ids).order_by("pk"))
    customer_ids = sorted({d.customer_id for d in items if d.customer_id is not None})
    # Lock in id order, like canonical's services, so a concurrent event cannot interleave with a bump.
    customers = {c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=customer_ids).order_by("pk")}
    states = {
        (s.target_id, s.customer_id): s
        for s in DeliveredState.objects.filter(customer_id__in=customer_ids,
                                               target_id__in={d.run.target_id for d in items})
    }
    now = timezone.now()
    queued_per_run: Counter = Counter()
    for item in items:
        reason = discrepancy_fix_skip_reason(item, customer_ids=customers.keys())
        if reason:
            result.skipped[reason] += 1
            continue
        customer, target = customers[item.customer_id], item.run.target
        operation = OutboxMessage.Operation.DELETE if customer.is_deleted else OutboxMessage.Operation.UPSERT
        state = states.get((target.pk, customer.pk))
        correlation_id = f"reconcile:{item.run_id}"
        if state is not None and state.version == customer.version and state.operation == operation:
            # The target acknowledged this version already: resend it as a new one (new Idempotency-Key).
            [change] = customer_versions_bump(customer_ids=[customer.pk], correlation_id=correlation_id)
            customer.version = change.version
        else:
            change = CustomerChange(customer_id=customer.pk, version=customer.version, operation=operation,
                                    correlation_id=correlation_id)
        written = outbox_enqueue(changes=[change], resend=True, target_ids=[target.pk])
        result.queued += written
        queued_per_run[item.run_id] += written
        Discrepancy.objects.filter(pk=item.pk).update(fixed_at=now, fix_note=f"queued {operation} v{customer.version}")
        result.fixed += 1
        result.fixed_ids.append(item.pk)
    for run_id, written in queued_per_run.items():
        ReconciliationRun.objects.filter(pk=run_id).update(fixed=True, fixed_count=F("fixed_count") + written)


