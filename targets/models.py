"""Targets and the outbox: what goes where, what is pending, what happened.

Saleor-style rows: `OutboxMessage` is the delivery (one per target, customer
and coalesced change), `DeliveryAttempt` each HTTP try, `DeliveredState` the
last state a target acknowledged. Secrets are `${VAR}` references only.
"""

from django.db import models
from django.db.models import Q

from canonical.models import Customer
from core.models import TimeStampedModel
from targets.validators import validate_http_url


class TargetsError(Exception):
    """The one domain exception of the targets app."""


class Target(TimeStampedModel):
    """A system custsync feeds: a CDP, a CRM or a webhook subscriber."""

    class Kind(models.TextChoices):
        CDP = "cdp", "Customer data platform"
        CRM = "crm", "CRM"
        WEBHOOK = "webhook", "Webhook subscriber"

    class AuthKind(models.TextChoices):
        BEARER = "bearer", "Bearer token"
        API_KEY = "api_key", "API key (Authorization: ApiKey ...)"
        OAUTH2 = "oauth2", "OAuth2 client credentials"
        STANDARD_WEBHOOKS = "standard_webhooks", "Standard Webhooks signature"
        NONE = "none", "None"

    name = models.SlugField(max_length=64, unique=True, help_text="Stable name, e.g. cdp, crm, n8n.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    base_url = models.CharField(max_length=500, validators=[validate_http_url], help_text="API base URL; for webhook targets the URL events are posted to.")
    auth_kind = models.CharField(max_length=24, choices=AuthKind.choices, default=AuthKind.NONE)
    secret_refs = models.JSONField(
        default=dict, blank=True,
        help_text='Environment references only, e.g. {"token": "${CDP_TOKEN}"}; keys: token, api_key, secret, client_secret.',
    )
    oauth_token_url = models.CharField(max_length=500, blank=True, validators=[validate_http_url], help_text="OAuth2 token endpoint (client credentials).")
    oauth_client_id = models.CharField(
        max_length=200, blank=True, help_text="OAuth2 client id, a literal or a ${VAR} reference."
    )
    oauth_scope = models.CharField(max_length=200, blank=True)
    timeout_seconds = models.FloatField(default=20, help_text="Per request (connect and read).")
    rate_limit_per_minute = models.PositiveIntegerField(
        default=600, help_text="Requests per minute across all workers together; 0 = unlimited."
    )
    max_retries = models.PositiveIntegerField(default=5, help_text="Retries after the first attempt before giving up.")
    backoff_seconds = models.FloatField(default=0.5, help_text="Base of the exponential backoff (full jitter).")
    dead_letter_queue = models.BooleanField(
        default=True,
        help_text="Failed messages go to the dead-letter queue (replayable); off: they are marked discarded.",
    )
    retry_window_hours = models.FloatField(
        default=72,
        help_text="While the target is down or holds us off (Retry-After), a message waits this long after its "
                  "first failed attempt before it is given up.",
    )
    enabled = models.BooleanField(
        default=True,
        help_text="A disabled target gets nothing: no outbox rows are written for it. Re-enabling it offers a "
                  "resync, because it missed every change made meanwhile.",
    )
    paused_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="Paused (maintenance): changes keep coalescing in the outbox and are delivered on resume.",
    )
    paused_by = models.CharField(max_length=150, blank=True, editable=False,
                                 help_text="Who paused it: a user name, or cli:<command> (<OS user>).")
    pause_reason = models.CharField(max_length=200, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("pause_target", "Can pause and resume deliveries to a target"),
            ("resync_target", "Can resync a target (queue every customer it missed)"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(timeout_seconds__gt=0) & Q(backoff_seconds__gte=0),
                name="%(app_label)s_%(class)s_positive_timings",
            ),
            models.CheckConstraint(
                condition=Q(retry_window_hours__gt=0), name="%(app_label)s_%(class)s_positive_retry_window",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class TargetFieldMapping(models.Model):
    """One canonical field a target receives and where it goes in the body.

    `canonical_field` is a snapshot key (`email`, `first_name`, `external_ids`,
    `external_ids.shop`, `id`, `version`, `last_source`, ...); `target_path` a
    dotted path in the body (`profile.first_name`). Rows apply in `order`.
    """

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="field_mappings")
    canonical_field = models.CharField(max_length=64, help_text="Golden-record field, e.g. email, external_ids, last_source.")
    target_path = models.CharField(max_length=200, help_text="Dotted path in the target's body, e.g. profile.first_name.")
    enabled = models.BooleanField(default=True)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["target", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["target", "target_path"], name="%(app_label)s_%(class)s_unique_path"),
        ]

    def __str__(self) -> str:
        return f"{self.canonical_field} -> {self.target_path}"


class TargetRuntime(models.Model):
    """Shared per-target runtime state: the rate-limit bucket, the pump lease and the target's health.

    Kept apart from `Target` so an admin save never overwrites it. The bucket
    is GCRA: `rate_tat` is the theoretical arrival time (unix seconds) of the
    next allowed request; one conditional UPDATE takes a slot. The health
    fields are the circuit breaker of `targets/health.py`, written by
    `targets/health_store.py` (compare-and-set on `health_seq`).
    """

    class Health(models.TextChoices):
        UP = "up", "Up"
        DOWN = "down", "Down"

    target = models.OneToOneField(Target, on_delete=models.CASCADE, related_name="runtime")
    rate_tat = models.FloatField(default=0)
    rate_limit_waits = models.PositiveBigIntegerField(default=0, help_text="Times a worker waited for a rate-limit slot.")
    pump_owner = models.CharField(max_length=64, blank=True)
    pump_lease_until = models.DateTimeField(null=True, blank=True)
    pump_requested_at = models.DateTimeField(null=True, blank=True)
    health = models.CharField(max_length=8, choices=Health.choices, default=Health.UP)
    down_since = models.DateTimeField(null=True, blank=True)
    health_error = models.TextField(blank=True, help_text="Excerpt of the last outage failure.")
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_messages = models.PositiveIntegerField(default=0, help_text="Different messages in the failure streak.")
    last_failed_message_id = models.BigIntegerField(null=True, blank=True)
    probe_gap_seconds = models.FloatField(default=0)
    next_probe_at = models.DateTimeField(null=True, blank=True)
    probe_owner = models.CharField(max_length=64, blank=True)
    probe_lease_until = models.DateTimeField(null=True, blank=True)
    retry_after_until = models.DateTimeField(
        null=True, blank=True, help_text="The target asked (Retry-After) for no request before this time."
    )
    health_seq = models.PositiveBigIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True, help_text="When a worker last sent to it.")

    def __str__(self) -> str:
        return f"runtime of {self.target_id}"


class TargetResync(TimeStampedModel):
    """A job that queues every customer a target missed (after it was disabled, or on request).

    It walks the customers in id order, a batch per transaction, and keeps its
    place in `cursor`, so a worker that dies leaves a job the sweeper resumes
    where it stopped. A newer job for the same target supersedes a running one.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        SUPERSEDED = "superseded", "Superseded by a newer resync"

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="resyncs")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    requested_by = models.CharField(max_length=150, blank=True, help_text="A user name, or cli:<command> (<OS user>).")
    cursor = models.PositiveBigIntegerField(default=0, help_text="The last customer id looked at.")
    total = models.PositiveIntegerField(default=0, help_text="Customers to look at when the job started.")
    seen = models.PositiveIntegerField(default=0, help_text="Customers looked at so far.")
    queued = models.PositiveIntegerField(default=0, help_text="Customers queued because the target missed a change.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["target"], condition=Q(status="running"),
                                    name="%(app_label)s_%(class)s_one_running_per_target"),
        ]

    def __str__(self) -> str:
        return f"resync {self.pk} of {self.target_id}: {self.status}"

    @property
    def progress(self) -> str:
        return f"{self.seen} of {self.total} customers looked at, {self.queued} queued"


class OutboxMessage(TimeStampedModel):
    """One change to deliver to one target: (target, customer, golden version).

    At most one pending/in-flight row per (target, customer): later changes
    coalesce into it. The body is built from the golden record when sent.
    """

    class Operation(models.TextChoices):
        UPSERT = "upsert", "Upsert"
        DELETE = "delete", "Delete"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_FLIGHT = "in_flight", "In flight"
        DELIVERED = "delivered", "Delivered"
        SUPERSEDED = "superseded", "Superseded (target already had this state)"
        DEAD = "dead", "Dead letter"
        DISCARDED = "discarded", "Discarded"

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="outbox_messages")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    operation = models.CharField(max_length=8, choices=Operation.choices, default=Operation.UPSERT)
    version = models.PositiveBigIntegerField(help_text="Golden version this message carries (newest coalesced).")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, editable=False)
    next_attempt_at = models.DateTimeField(
        help_text="Pending: when due. In flight: when the lease expires and another worker may take it."
    )
    lease_owner = models.CharField(max_length=64, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_status = models.PositiveIntegerField(null=True, blank=True, help_text="HTTP status of the last attempt.")
    last_error = models.TextField(blank=True, help_text="Excerpt of the last error or response body.")
    correlation_id = models.CharField(max_length=200, blank=True, help_text="Originating event id.")
    sent_version = models.PositiveBigIntegerField(null=True, blank=True, help_text="Golden version actually sent last.")
    force_send = models.BooleanField(
        default=False, help_text="Send even if the target already acknowledged this version (reconciliation fixes)."
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    first_failed_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="First failed attempt of this delivery (the retry window)."
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["target", "status", "next_attempt_at"], name="targets_outbox_claim_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["target", "customer"],
                condition=Q(status__in=["pending", "in_flight"]),
                name="%(app_label)s_%(class)s_one_active_per_target_customer",
            ),
        ]
        permissions = [
            ("replay_outboxmessage", "Can replay dead letters"),
            ("discard_outboxmessage", "Can discard dead letters"),
        ]

    def __str__(self) -> str:
        return f"{self.target_id}/{self.customer_id} v{self.version} {self.operation} ({self.status})"


class DeadLetterManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(status=OutboxMessage.Status.DEAD)


class DeadLetter(OutboxMessage):
    """Admin screen over dead outbox messages."""

    objects = DeadLetterManager()

    class Meta:
        proxy = True
        verbose_name = "dead letter"
        verbose_name_plural = "dead letters"


class DeliveryAttempt(models.Model):
    """One HTTP try of one outbox message."""

    class Outcome(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        RETRY = "retry", "Will retry"
        DEAD = "dead", "Gave up"
        LOST = "lost", "Lease lost (another worker took over)"

    message = models.ForeignKey(OutboxMessage, on_delete=models.CASCADE, related_name="delivery_attempts")
    started_at = models.DateTimeField(db_index=True)
    operation = models.CharField(max_length=8, choices=OutboxMessage.Operation.choices)
    version = models.PositiveBigIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    error = models.TextField(blank=True, help_text="Error or response excerpt, at most 1 KiB.")
    idempotency_key = models.CharField(max_length=100)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"attempt {self.pk} of {self.message_id}: {self.outcome}"


class DeliveredState(TimeStampedModel):
    """What a target last acknowledged for a customer: version and exact body.

    Reconciliation compares golden vs this vs the target's listing; delivery
    uses it to never send an older version after a newer one.
    """

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="delivered_states")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    version = models.PositiveBigIntegerField()
    operation = models.CharField(max_length=8, choices=OutboxMessage.Operation.choices)
    body = models.JSONField(null=True, blank=True, help_text="The mapped body sent (null for a delete).")
    idempotency_key = models.CharField(max_length=100)
    delivered_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["target", "customer"], name="%(app_label)s_%(class)s_unique_target_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.target_id}/{self.customer_id} v{self.version}"
