"""Support's maintenance of a target: pause, resume, resync.

- **Pause** (a maintenance window): outbox rows keep being written and
  coalescing for the target, but no pump delivers them; a pump already
  running stops within `PAUSE_CHECK_SECONDS`. **Resume** kicks its pump, and
  the backlog drains at its rate limit.
- **Disabled** is different: a disabled target gets no outbox rows at all, so
  re-enabling it leaves it behind until a **resync**.
- **Resync** queues every customer the target missed: a live customer whose
  version the target never acknowledged (no delivered state, or an older
  one), and an erased or merged-away customer the target still holds (its
  last acknowledged operation was an upsert). It is a `TargetResync` job that
  walks the customers in id order, one batch per transaction, keeping its
  place, so a killed worker's job is resumed by the sweeper where it stopped
  (`resyncs_stale_resume`). Queuing goes through `outbox_enqueue`: coalescing,
  the version fence and the rate limit apply as to any change.
"""

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q import tasks as django_q_tasks

from canonical.changes import CustomerChange
from canonical.models import Customer

from .models import DeliveredState, OutboxMessage, Target, TargetResync, TargetsError
from .services import outbox_enqueue, target_pumps_kick

logger = logging.getLogger(__name__)

RESYNC_BATCH_SIZE = 1000
RESYNC_STALE_SECONDS = 120  # a running job not advanced this long lost its worker: the sweeper resumes it
RESYNC_TASK = "targets.tasks.target_resync_run"


def _target_get(name: str) -> Target:
    target = Target.objects.filter(name=name).first()
    if target is None:
        known = ", ".join(Target.objects.order_by("name").values_list("name", flat=True)) or "none"
        raise TargetsError(f"no target named {name!r} (targets: {known})")
    return target


def target_pause(*, target_name: str, actor: str, reason: str = "") -> tuple[Target, bool]:
    """Pause deliveries to a target; returns (target, whether it was running before). Idempotent."""
    with transaction.atomic():
        target = _target_get(target_name)
        changed = bool(Target.objects.filter(pk=target.pk, paused_at__isnull=True).update(
            paused_at=timezone.now(), paused_by=actor[:150], pause_reason=reason[:200]))
        target.refresh_from_db()
    if changed:
        logger.info("target %s paused by %s%s", target.name, actor, f": {reason}" if reason else "")
    return target, changed


def target_resume(*, target_name: str, actor: str) -> tuple[Target, bool]:
    """Resume deliveries: the backlog is delivered at once (at the rate limit). Returns (target, was paused)."""
    with transaction.atomic():
        target = _target_get(target_name)
        changed = bool(Target.objects.filter(pk=target.pk, paused_at__isnull=False).update(
            paused_at=None, paused_by="", pause_reason=""))
        if changed:
            transaction.on_commit(lambda: target_pumps_kick(target_ids=[target.pk], force=True))
        target.refresh_from_db()
    if changed:
        logger.info("target %s resumed by %s", target.name, actor)
    return target, changed


def target_resync_start(*, target_name: str, actor: str, run_async: bool = True) -> TargetResync:
    """Start a resync job for an enabled target; a running one for the same target is superseded.

    With `run_async` the job is a worker task (enqueued after commit); without,
    the caller runs it (`target_resync_run`), e.g. a command showing progress.
    """
    target = _target_get(target_name)
    if not target.enabled:
        raise TargetsError(f"target {target.name!r} is disabled: enable it first (a disabled target gets nothing)")
    with transaction.atomic():
        TargetResync.objects.filter(target=target, status=TargetResync.Status.RUNNING).update(
            status=TargetResync.Status.SUPERSEDED, finished_at=timezone.now(), updated_at=timezone.now())
        try:
            with transaction.atomic():
                job = TargetResync.objects.create(target=target, requested_by=actor[:150],
                                                  total=Customer.objects.count())
        except IntegrityError:  # another start won the race between our UPDATE and INSERT
            raise TargetsError(f"a resync of {target.name!r} was started at the same moment; see its progress") from None
        if run_async:
            transaction.on_commit(lambda: django_q_tasks.async_task(RESYNC_TASK, job.pk))
    logger.info("resync %s of target %s started by %s", job.pk, target.name, actor)
    return job


def _missed_changes(*, target: Target, customers: list[tuple], job_id: int) -> list[CustomerChange]:
    """The changes among these customers (id, version, deleted_at, merged_into_id) that the target lacks."""
    delivered = dict(
        (customer_id, (version, operation)) for customer_id, version, operation in
        DeliveredState.objects.filter(target=target, customer_id__in=[c[0] for c in customers])
        .values_list("customer_id", "version", "operation")
    )
    correlation_id = f"resync:{job_id}"
    changes = []
    for customer_id, version, deleted_at, merged_into_id in customers:
        acked = delivered.get(customer_id)
        if deleted_at is None and merged_into_id is None:
            if acked is None or acked[0] < version:
                changes.append(CustomerChange(customer_id, version, "upsert", correlation_id))
        elif acked is not None and (acked[1] != OutboxMessage.Operation.DELETE or acked[0] < version):
            changes.append(CustomerChange(customer_id, version, "delete", correlation_id))
    return changes


def target_resync_run(*, resync_id: int, batch_size: int = RESYNC_BATCH_SIZE,
                      progress: Callable[[TargetResync], None] | None = None) -> TargetResync:
    """Run (or resume) a resync job to its end: one batch of customers per transaction.

    Safe to run twice at once: each batch locks the job row and starts from
    its cursor, and a superseded job stops at its next batch.
    """
    while True:
        with transaction.atomic():
            job = TargetResync.objects.select_for_update().select_related("target").get(pk=resync_id)
            if job.status != TargetResync.Status.RUNNING:
                return job
            customers = list(
                Customer.objects.filter(pk__gt=job.cursor).order_by("pk")
                .values_list("pk", "version", "deleted_at", "merged_into_id")[:batch_size]
            )
            changes = _missed_changes(target=job.target, customers=customers, job_id=job.pk)
            if changes:
                outbox_enqueue(changes=changes, target_ids=[job.target_id])
            job.seen += len(customers)
            job.queued += len(changes)
            if customers:
                job.cursor = customers[-1][0]
            if len(customers) < batch_size:
                job.status, job.finished_at = TargetResync.Status.DONE, timezone.now()
            job.save(update_fields=["seen", "queued", "cursor", "status", "finished_at", "updated_at"])
        if progress:
            progress(job)
        if job.status != TargetResync.Status.RUNNING:
            logger.info("resync %s of target %s done: %s", job.pk, job.target.name, job.progress)
            return job


def resyncs_stale_resume() -> int:
    """Re-enqueue running jobs that stopped advancing (their worker died or their task was lost)."""
    stale = list(TargetResync.objects.filter(
        status=TargetResync.Status.RUNNING, updated_at__lt=timezone.now() - timedelta(seconds=RESYNC_STALE_SECONDS),
    ).values_list("pk", flat=True))
    for resync_id in stale:
        django_q_tasks.async_task(RESYNC_TASK, resync_id)
    return len(stale)
