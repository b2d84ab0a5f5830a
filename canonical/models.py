"""The golden record and what hangs off it.

canonical imports only the kernel (`core`): webhooks, targets and reconciliation build on it.
"""

from django.conf import settings
from django.db import models

from core.models import TimeStampedModel

from . import fields, survivorship


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


# The units a field rule decides (the export's field names; addresses per type), from the field registry.
RuleField = models.TextChoices(
    "RuleField",
    [(unit.upper().replace(".", "_"), (unit, label)) for unit, label in fields.RULE_CHOICES],
    module=__name__,
)


class SourcePriorityRule(TimeStampedModel):
    """Which source is the truth for one field. Edited by data stewards; loadable from the sync config."""

    class Strategy(models.TextChoices):
        SOURCE_PRIORITY = survivorship.SOURCE_PRIORITY, "source priority (best-ranked source wins)"
        LAST_WRITE_WINS = survivorship.LAST_WRITE_WINS, "last write wins (latest occurred_at wins)"

    field = models.CharField(max_length=32, choices=RuleField.choices, unique=True)
    strategy = models.CharField(
        max_length=32, choices=Strategy.choices, default=Strategy.SOURCE_PRIORITY,
        help_text="source priority: the best-ranked source that sent a value wins (equal rank: later "
                  "occurred_at, then larger event id). last write wins: the latest occurred_at wins "
                  "(tie: better rank, then larger event id).",
    )
    sources = models.JSONField(
        default=list, blank=True,
        help_text='Ordered source names, best first, e.g. ["crm", "shop"]. A source not listed may not set '
                  "this field (its values are kept as rejected). Empty: every source may, with equal rank.",
    )

    class Meta:
        ordering = ["field"]
        verbose_name = "field rule"

    def __str__(self) -> str:
        return f"{self.field}: {self.strategy} {', '.join(self.sources) or '(any source)'}"

    def clean(self):
        from django.core.exceptions import ValidationError

        if not isinstance(self.sources, list) or not all(isinstance(s, str) and s.strip() for s in self.sources):
            raise ValidationError({"sources": "must be a list of source names"})
        if len(set(self.sources)) != len(self.sources):
            raise ValidationError({"sources": "a source may appear only once"})

    def as_rule(self):
        return survivorship.Rule(strategy=self.strategy, sources=tuple(self.sources or ()))


class SourceValue(TimeStampedModel):
    """Each source's latest value of one field of one customer, and whether it is the winner.

    Keeping the latest value per (customer, field, source) and deciding from
    those is what makes the golden record independent of arrival order. The
    winner row (`is_winner`) is the field's provenance.
    """

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="source_values")
    field = models.CharField(max_length=32, choices=RuleField.choices)
    source = models.CharField(max_length=64)
    value = models.JSONField(null=True, blank=True, help_text="Normalized value; null is an explicit clear.")
    occurred_at = models.DateTimeField(help_text="When the source says the value changed.")
    event_id = models.CharField(max_length=255, help_text="The inbox event that carried the value.")
    is_winner = models.BooleanField(default=False, help_text="This value is the golden record's value.")
    rejected = models.BooleanField(default=False, help_text="The field rule does not let this source set the field.")

    class Meta:
        ordering = ["customer_id", "field", "source"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "field", "source"], name="%(app_label)s_%(class)s_unique_customer_field_source"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}.{self.field} from {self.source}"

    def as_candidate(self):
        return survivorship.Candidate(source=self.source, value=self.value, occurred_at=self.occurred_at,
                                      event_id=self.event_id)


class FieldOverride(TimeStampedModel):
    """A steward's accepted conflict: its value wins until, after `anchor_at`, a source ranked
    better than `source` records a value, or `source` itself records a different one."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="field_overrides")
    field = models.CharField(max_length=32, choices=RuleField.choices)
    value = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=64, help_text="The source whose value the steward chose.")
    anchor_at = models.DateTimeField(help_text="Only values that occurred after this can end the override.")
    event_id = models.CharField(max_length=255, blank=True, help_text="The event that carried the chosen value.")
    conflict = models.ForeignKey("Conflict", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    is_winner = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "field"], name="%(app_label)s_%(class)s_unique_customer_field"),
        ]

    def as_override(self):
        return survivorship.Override(value=self.value, source=self.source, anchor_at=self.anchor_at)


class Conflict(TimeStampedModel):
    """Something stewards decide: a losing value that differs from the winner, or two
    customers that would have merged although they hold different ids of the same system."""

    IDENTITY = "identity"  # `field` of identity conflicts

    class Status(models.TextChoices):
        OPEN = "open", "open"
        ACCEPTED_INCOMING = "accepted_incoming", "accepted incoming"
        KEPT_CURRENT = "kept_current", "kept current"
        SUPERSEDED = "superseded", "superseded"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="conflicts")
    field = models.CharField(max_length=32, help_text='A rule field, or "identity" for a blocked merge.')
    other_customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="Identity conflicts: the customer that was not merged.",
    )
    current_value = models.JSONField(null=True, blank=True)
    current_source = models.CharField(max_length=64, blank=True)
    current_occurred_at = models.DateTimeField(null=True, blank=True)
    incoming_value = models.JSONField(null=True, blank=True)
    incoming_source = models.CharField(max_length=64, blank=True)
    incoming_occurred_at = models.DateTimeField(null=True, blank=True)
    event_id = models.CharField(max_length=255, help_text="The event that raised the conflict.")
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.OPEN)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("resolve_conflict", "Can resolve conflicts (accept incoming / keep current)")]
        indexes = [
            models.Index(fields=["customer", "field"], condition=models.Q(status="open"),
                         name="canonical_conflict_open_idx"),
        ]

    def __str__(self) -> str:
        return f"Conflict {self.pk} ({self.field}, {self.status})"


class MergeLog(TimeStampedModel):
    """One customer merged into another by identity resolution."""

    survivor = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merge_logs")
    merged = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+",
                               help_text="The record merged away (now a tombstone with merged_into).")
    reason = models.CharField(max_length=200, help_text="Which identifier linked the two records.")
    event_id = models.CharField(max_length=255)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.merged_id} -> {self.survivor_id}"


class ErasedIdentifier(TimeStampedModel):
    """A hashed identifier of an erased customer and when the erasure occurred.

    An upsert that occurred at or before `erased_occurred_at` and carries one
    of these identifiers is ignored, so a late event never resurrects an
    erased person; one that occurred later creates a new customer.
    """

    key_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the normalized identifier.")
    erased_occurred_at = models.DateTimeField()
    event_id = models.CharField(max_length=255)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"erased identifier {self.key_hash[:12]}…"
