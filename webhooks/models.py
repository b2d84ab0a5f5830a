"""Webhook sources and the durable inbox.

`Source` says who may send and how they sign; `InboxEvent` is one accepted
delivery, committed before the 202 and processed later by a worker. Secrets
are stored as `${VAR}` references only and resolved from the environment at
verification time.
"""

import pycountry
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from canonical.events import EVENT_TYPES
from core.models import TimeStampedModel
from core.secrets import is_reference


def default_schema_versions() -> list[int]:
    return [1]


def default_event_types() -> list[str]:
    return list(EVENT_TYPES)


def validate_secret_refs(value) -> None:
    """A list of `${VAR}` references; the message never repeats a literal value."""
    if not isinstance(value, list):
        raise ValidationError("must be a list of ${VAR} references")
    for index, item in enumerate(value):
        if not is_reference(item):
            raise ValidationError(
                f"item {index} is not an environment reference like ${{NAME}}; "
                "literal secrets are never stored (the value is not shown)"
            )
    if len(set(value)) != len(value):
        raise ValidationError("references must not repeat")


def validate_schema_versions(value) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError("must be a non-empty list of positive integers, e.g. [1, 2]")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise ValidationError(f"{item!r} is not a positive integer schema version")


def validate_event_types(value) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError(f"must be a non-empty list drawn from {', '.join(EVENT_TYPES)}")
    for item in value:
        if item not in EVENT_TYPES:
            raise ValidationError(f"{item!r} is not a known event type ({', '.join(EVENT_TYPES)})")


def validate_region(value) -> None:
    if not isinstance(value, str) or len(value) != 2 or not value.isupper() or pycountry.countries.get(alpha_2=value) is None:
        raise ValidationError(f"{value!r} is not an upper-case ISO 3166-1 alpha-2 country code (e.g. DE, AT)")


class Source(TimeStampedModel):
    """A system allowed to send customer events (shop, crm, support, ...)."""

    class SignatureScheme(models.TextChoices):
        HMAC_SHA256 = "hmac-sha256", "HMAC-SHA256 (X-Timestamp / X-Signature)"
        STANDARD_WEBHOOKS = "standard-webhooks", "Standard Webhooks (webhook-id / -timestamp / -signature)"

    name = models.SlugField(max_length=64, unique=True, help_text="The envelope's `source` value, e.g. shop.")
    enabled = models.BooleanField(default=True, help_text="Disabled sources are refused with 401.")
    signature_scheme = models.CharField(
        max_length=32, choices=SignatureScheme.choices, default=SignatureScheme.HMAC_SHA256,
    )
    secret_refs = models.JSONField(
        default=list, blank=True, validators=[validate_secret_refs],
        help_text='Environment references like ["${SHOP_SECRET}"]; several during a rotation, any one verifies.',
    )
    schema_versions = models.JSONField(
        default=default_schema_versions, validators=[validate_schema_versions],
        help_text="Accepted envelope schema versions, e.g. [1, 2].",
    )
    event_types = models.JSONField(
        default=default_event_types, validators=[validate_event_types],
        help_text="Accepted event types.",
    )
    default_region = models.CharField(
        max_length=2, default="DE", validators=[validate_region],
        help_text="ISO 3166-1 alpha-2 country used to read national phone numbers from this source.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(signature_scheme__in=["hmac-sha256", "standard-webhooks"]),
                name="%(app_label)s_%(class)s_signature_scheme_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class InboxEvent(models.Model):
    """One accepted delivery, exactly as received; the worker turns it into golden-record changes.

    Written by the gateway and the worker only (read-only in the admin).
    `(source, event_id)` is unique: a redelivery is a duplicate, not a new row.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"

    UNFINISHED = (Status.RECEIVED, Status.PROCESSING)

    source = models.ForeignKey(
        Source, on_delete=models.PROTECT, related_name="inbox_events",
        # The (source, event_id) unique index already starts with source_id.
        db_index=False, editable=False,
    )
    event_id = models.CharField(
        max_length=255, editable=False,
        help_text="The sender's event_id, or the computed dedup key sha256:<hex> when the sender sent none.",
    )
    event_id_provided = models.BooleanField(default=True, editable=False, help_text="False when event_id is computed.")
    type = models.CharField(max_length=64, editable=False)
    schema_version = models.PositiveIntegerField(editable=False)
    occurred_at = models.DateTimeField(editable=False)
    payload = models.JSONField(editable=False, help_text="The whole envelope as received.")
    received_at = models.DateTimeField(default=timezone.now, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0, help_text="Processing attempts so far.")
    last_error = models.TextField(blank=True, help_text="Why the latest processing attempt failed.")
    processed_at = models.DateTimeField(null=True, blank=True)
    problems = models.JSONField(
        default=list, blank=True,
        help_text="Normalization warnings/errors found while processing: [{field, message, severity}].",
    )
    lease_owner = models.CharField(max_length=128, blank=True, help_text="Worker holding the claim.")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    customer = models.ForeignKey(
        "canonical.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="inbox_events",
        help_text="The golden record this event changed.",
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        permissions = [("replay_inboxevent", "Can replay failed inbox events")]
        constraints = [
            models.UniqueConstraint(fields=["source", "event_id"], name="%(app_label)s_%(class)s_unique_source_event_id"),
            models.CheckConstraint(condition=~Q(event_id=""), name="%(app_label)s_%(class)s_event_id_not_empty"),
            models.CheckConstraint(
                condition=Q(status__in=["received", "processing", "processed", "failed"]),
                name="%(app_label)s_%(class)s_status_valid",
            ),
        ]
        indexes = [
            # Worker and dashboards: "what is in state X, oldest first".
            models.Index(fields=["status", "received_at"], name="webhooks_ie_status_recv"),
            # The sweeper's hot subset: unfinished events only (small, stays in memory).
            models.Index(
                fields=["received_at"], name="webhooks_ie_unfinished",
                condition=Q(status__in=["received", "processing"]),
            ),
            # Admin: filter by source and type, newest first; and the default ordering.
            models.Index(fields=["source", "type", "received_at"], name="webhooks_ie_source_type_recv"),
            models.Index(fields=["received_at"], name="webhooks_ie_received"),
        ]

    def __str__(self) -> str:
        return self.event_id
