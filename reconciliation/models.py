"""Reconciliation runs and what they found.

`ReconciliationRun` is one comparison of the golden records with one target's
listing; `Discrepancy` one customer (or one target record) that differs.
Both are written by the reconcile service only (read-only in the admin).
`SpilledRecord` is scratch space: a run streams the target's listing into it
(keyed by golden id) so that memory stays flat, and deletes its rows when done.
"""

from django.db import models
from django.db.models import Q

from core.models import TimeStampedModel


class ReconciliationError(Exception):
    """The one domain exception of the reconciliation app (bad arguments, unusable input)."""


class DiscrepancyClass(models.TextChoices):
    IN_SYNC = "in_sync", "in sync"
    MISSING_IN_TARGET = "missing_in_target", "missing in target"
    ORPHAN_IN_TARGET = "orphan_in_target", "orphan in target"
    FIELD_DRIFT = "field_drift", "field drift"


class SubClass(models.TextChoices):
    # field drift and missing: the three-way comparison (golden / last delivered / target now)
    EDITED_IN_TARGET = "edited_in_target", "edited in target (differs from what custsync sent)"
    DELIVERY_BEHIND = "delivery_behind", "delivery behind (what custsync sent is older than the golden record)"
    NEVER_DELIVERED = "never_delivered", "never delivered to this target"
    DELETED_IN_TARGET = "deleted_in_target", "deleted in target (custsync had delivered it)"
    # orphans
    ERASED = "erased", "golden record erased"
    MERGED = "merged", "golden record merged into another"
    UNKNOWN = "unknown", "no golden record with this id"
    DUPLICATE = "duplicate", "a second target record for the same customer"


COUNT_CLASSES = (
    DiscrepancyClass.IN_SYNC, DiscrepancyClass.MISSING_IN_TARGET,
    DiscrepancyClass.ORPHAN_IN_TARGET, DiscrepancyClass.FIELD_DRIFT,
)


class ReconciliationRun(TimeStampedModel):
    """One reconciliation of one target. Counts are set only when the run succeeded."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    target = models.ForeignKey("targets.Target", on_delete=models.CASCADE, related_name="reconciliation_runs",
                               editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, editable=False)
    started_at = models.DateTimeField(editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
    lease_owner = models.CharField(max_length=64, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="A running run renews this; once it passes, the process is presumed dead and the run failed.",
    )
    counts = models.JSONField(default=dict, blank=True, editable=False,
                              help_text="Per class (in_sync, missing_in_target, orphan_in_target, field_drift).")
    sub_counts = models.JSONField(default=dict, blank=True, editable=False, help_text="Per class and sub-class.")
    records_listed = models.PositiveBigIntegerField(default=0, editable=False,
                                                    help_text="Records read from the target's listing.")
    golden_scanned = models.PositiveBigIntegerField(default=0, editable=False,
                                                    help_text="Golden records (incl. tombstones) compared.")
    fix_requested = models.BooleanField(default=False, editable=False, help_text="Started with --fix.")
    fixed = models.BooleanField(default=False, editable=False, help_text="Fixes were queued for this run.")
    fixed_count = models.PositiveIntegerField(default=0, editable=False,
                                              help_text="Outbox messages queued by fixes of this run.")
    error = models.TextField(blank=True, editable=False, help_text="Why the run failed.")
    duration_seconds = models.FloatField(null=True, blank=True, editable=False)
    trigger = models.CharField(max_length=32, blank=True, editable=False,
                               help_text="command, schedule or admin.")

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "reconciliation run"
        permissions = [("fix_discrepancy", "Can fix discrepancies (queue outbox upserts/deletes)")]
        constraints = [
            # The lock: at most one running run per target, guaranteed by the database.
            models.UniqueConstraint(fields=["target"], condition=Q(status="running"),
                                    name="%(app_label)s_%(class)s_one_running_per_target"),
            models.CheckConstraint(condition=Q(status__in=["running", "succeeded", "failed"]),
                                   name="%(app_label)s_%(class)s_status_valid"),
        ]
        indexes = [
            models.Index(fields=["target", "status", "started_at"], name="recon_run_target_status"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.target_id} ({self.status})"

    def discrepancy_total(self) -> int:
        return sum(int(self.counts.get(k, 0)) for k in COUNT_CLASSES if k != DiscrepancyClass.IN_SYNC)


class Discrepancy(models.Model):
    """One difference found by a run. Values are per-field excerpts, never whole records."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="discrepancies", editable=False)
    customer_id = models.BigIntegerField(null=True, blank=True, editable=False,
                                         help_text="Golden record id (null when the target record names none).")
    target_record_id = models.CharField(max_length=200, blank=True, editable=False,
                                        help_text="The id the target record carries for this customer.")
    klass = models.CharField("class", max_length=24, choices=DiscrepancyClass.choices, editable=False)
    sub_class = models.CharField(max_length=24, choices=SubClass.choices, blank=True, editable=False)
    fields = models.JSONField(default=list, blank=True, editable=False, help_text="Fields that differ.")
    field_names = models.CharField(max_length=500, blank=True, editable=False,
                                   help_text="The same, comma-separated and wrapped (',email,phone,') for filtering.")
    values = models.JSONField(
        default=dict, blank=True, editable=False,
        help_text="Per field: {golden, delivered, target, sub_class} excerpts.",
    )
    golden_version = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    delivered_version = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    fixed_at = models.DateTimeField(null=True, blank=True, editable=False)
    fix_note = models.CharField(max_length=200, blank=True, editable=False)

    class Meta:
        ordering = ["run", "customer_id", "id"]
        verbose_name_plural = "discrepancies"
        indexes = [
            models.Index(fields=["run", "klass", "sub_class"], name="recon_disc_run_class"),
            models.Index(fields=["run", "customer_id"], name="recon_disc_run_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.klass} {self.customer_id or self.target_record_id}"


class SpilledRecord(models.Model):
    """Scratch: one target record of a running reconciliation, as comparable canonical fields.

    Rows live only while a run (or dry run, identified by `spill`) is comparing;
    the run deletes them at the end, also when it fails.
    """

    spill = models.CharField(max_length=40, editable=False)
    golden_id = models.BigIntegerField(null=True, blank=True, editable=False)
    record_key = models.CharField(max_length=200, blank=True, editable=False)
    fields = models.JSONField(default=dict, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["spill", "golden_id"], name="recon_spill_golden")]
