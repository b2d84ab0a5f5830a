"""The golden record and what hangs off it.

canonical imports no other app: webhooks, targets and reconciliation build on it.
"""

from django.db import models


class TimeStampedModel(models.Model):
    """Abstract base: creation and update times for every table people look at."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Customer(TimeStampedModel):
    """One person: the golden record that every target receives.

    Empty text fields are "" (never NULL); the export and the targets show
    them as null. `version` increments on every change and orders deliveries.
    """

    version = models.PositiveBigIntegerField(default=0, help_text="Increments on every change of the golden record.")
    email = models.CharField(max_length=254, blank=True, db_index=True)
    phone = models.CharField(max_length=32, blank=True, db_index=True, help_text="E.164")
    first_name = models.CharField(max_length=200, blank=True)
    last_name = models.CharField(max_length=200, blank=True)
    locale = models.CharField(max_length=35, blank=True, help_text="BCP 47, e.g. de-DE")
    addresses = models.JSONField(default=list, blank=True)
    marketing_opt_in = models.BooleanField(null=True, blank=True)
    marketing_opt_in_at = models.DateTimeField(null=True, blank=True)
    last_source = models.CharField(max_length=64, blank=True, help_text="Source of the latest change.")
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="Set when erased: the record is a tombstone.")
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_from",
        help_text="Set when this record was merged into another (it is then a tombstone too).",
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Customer {self.pk}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None or self.merged_into_id is not None


class ExternalId(TimeStampedModel):
    """A customer's id in one source system (`shop` -> `9981`); one owner per (system, value)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="external_ids")
    system = models.CharField(max_length=64, help_text="System name, e.g. shop, crm, support.")
    value = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["system", "value"], name="canonical_externalid_unique_system_value"),
        ]

    def __str__(self) -> str:
        return f"{self.system}:{self.value}"
