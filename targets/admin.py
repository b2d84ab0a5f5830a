"""Admin: targets with their field mapping, the outbox (read-only), attempts (read-only), dead letters.

Secret fields show `${VAR}` references only; values never reach the admin.
"""

import json

from django import forms
from django.contrib import admin, messages

from core.actors import user_actor
from core.admin import CONFIRM_LIST_LIMIT, ReadOnlyAdminMixin, action_confirmation
from core.secrets import is_reference

from .mapping import CANONICAL_FIELDS, is_known_field
from .maintenance import target_pause, target_resume, target_resync_start
from .models import DeadLetter, DeliveryAttempt, OutboxMessage, Target, TargetFieldMapping, TargetResync, TargetsError
from .services import dead_letter_discard, dead_letter_replay, target_mappings_ensure_defaults


class TargetFieldMappingInline(admin.TabularInline):
    model = TargetFieldMapping
    extra = 0
    fields = ("order", "canonical_field", "target_path", "enabled")


class TargetForm(forms.ModelForm):
    class Meta:
        model = Target
        fields = "__all__"

    def clean_secret_refs(self):
        """Only `${VAR}` references are stored; a literal secret is refused, and never shown back to the browser."""
        refs = self.cleaned_data.get("secret_refs") or {}
        if not isinstance(refs, dict):
            self._show_back({})
            raise forms.ValidationError('secret_refs must be an object of names and ${VAR} references, '
                                        'e.g. {"token": "${CDP_TOKEN}"}.')
        literal = sorted(str(key) for key, value in refs.items() if not is_reference(value))
        if literal:
            self._show_back({key: value for key, value in refs.items() if is_reference(value)})
            raise forms.ValidationError(
                f"secret_refs: {', '.join(literal)} must be a ${{VAR}} reference to an environment variable "
                "(e.g. ${CDP_TOKEN}), not a literal secret; the value you typed was not saved or shown."
            )
        return refs

    def _show_back(self, refs: dict) -> None:
        """The re-rendered form would echo what was typed: send back the references only."""
        self.data = self.data.copy()
        self.data[self.add_prefix("secret_refs")] = json.dumps(refs)


@admin.register(Target)
class TargetAdmin(admin.ModelAdmin):
    """Targets, and support's maintenance of them: pause and resume deliveries, resync what one missed."""

    form = TargetForm
    list_display = ("name", "kind", "base_url", "auth_kind", "rate_limit_per_minute", "max_retries", "enabled",
                    "delivery_state")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    inlines = [TargetFieldMappingInline]
    actions = ["pause", "resume", "resync"]
    readonly_fields = ("delivery_state", "last_resync")
    fieldsets = (
        (None, {"fields": ("name", "kind", "base_url", "enabled", "delivery_state", "last_resync")}),
        ("Authentication (references to environment variables only)",
         {"fields": ("auth_kind", "secret_refs", "oauth_token_url", "oauth_client_id", "oauth_scope")}),
        ("Delivery", {"fields": ("timeout_seconds", "rate_limit_per_minute", "max_retries", "backoff_seconds",
                                 "dead_letter_queue")}),
    )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            target_mappings_ensure_defaults(target=obj)
        elif "enabled" in form.changed_data and obj.enabled:
            self.message_user(request, f"Target {obj.name} is enabled again. It missed every change made while it "
                                       "was disabled: select it in the list and run \"Resync selected targets\".",
                              messages.WARNING)

    @admin.display(description="deliveries")
    def delivery_state(self, obj):
        if not obj.enabled:
            return "disabled (gets nothing)"
        if obj.paused_at is not None:
            why = f": {obj.pause_reason}" if obj.pause_reason else ""
            return f"paused since {obj.paused_at:%Y-%m-%d %H:%M} by {obj.paused_by or 'unknown'}{why}"
        return "running"

    @admin.display(description="last resync")
    def last_resync(self, obj):
        job = obj.resyncs.order_by("-created_at", "-id").first() if obj.pk else None
        if job is None:
            return "never"
        return f"{job.get_status_display()} ({job.progress}), started {job.created_at:%Y-%m-%d %H:%M} by {job.requested_by}"

    def has_pause_permission(self, request):
        return request.user.has_perm("targets.pause_target")

    def has_resync_permission(self, request):
        return request.user.has_perm("targets.resync_target")

    def _maintain(self, request, queryset, *, action: str, verb: str, explanation: str, run):
        if request.POST.get("post") != "yes":
            return action_confirmation(self, request, queryset=queryset, action=action,
                                       title=f"{verb} {queryset.count()} target(s)?", explanation=explanation,
                                       items=[f"{t.name} · {self.delivery_state(t)}" for t in queryset],
                                       confirm_label=f"Yes, {verb.lower()}")
        done, refused = [], []
        for target in queryset:
            try:
                if run(target):
                    done.append(target)
            except TargetsError as error:
                refused.append(str(error))
        past = f"{verb}d" if verb.endswith("e") else f"{verb}ed"
        for target in done:
            self.log_change(request, target, f"{past}.")
        self.message_user(request, f"{past} {len(done)} target(s).", messages.SUCCESS)
        for text in refused:
            self.message_user(request, text, messages.ERROR)
        return None

    @admin.action(permissions=["pause"], description="Pause deliveries to selected targets")
    def pause(self, request, queryset):
        actor = user_actor(request.user)
        return self._maintain(
            request, queryset, action="pause", verb="Pause",
            explanation="No request is sent to these targets until they are resumed (a request in flight finishes). "
                        "Changes keep being written to their outbox and coalesce, one message per customer.",
            run=lambda target: target_pause(target_name=target.name, actor=actor)[1])

    @admin.action(permissions=["pause"], description="Resume deliveries to selected targets")
    def resume(self, request, queryset):
        actor = user_actor(request.user)
        return self._maintain(
            request, queryset, action="resume", verb="Resume",
            explanation="Their outbox is delivered from now on, oldest first, at each target's rate limit.",
            run=lambda target: target_resume(target_name=target.name, actor=actor)[1])

    @admin.action(permissions=["resync"], description="Resync selected targets (queue what they missed)")
    def resync(self, request, queryset):
        actor = user_actor(request.user)
        return self._maintain(
            request, queryset, action="resync", verb="Resync",
            explanation="A worker looks at every customer and queues those the target missed: live customers whose "
                        "current version it never acknowledged, and erased or merged-away ones it still holds. "
                        "Progress shows on each target's page; a resync already running is superseded.",
            run=lambda target: bool(target_resync_start(target_name=target.name, actor=actor)))


@admin.register(TargetResync)
class TargetResyncAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "target", "status", "seen", "total", "queued", "requested_by", "created_at", "finished_at")
    list_filter = ("status", "target")
    list_select_related = ("target",)


class TargetFieldMappingForm(forms.ModelForm):
    class Meta:
        model = TargetFieldMapping
        fields = ("target", "order", "canonical_field", "target_path", "enabled")

    def clean_canonical_field(self):
        value = self.cleaned_data["canonical_field"]
        if not is_known_field(value):
            raise forms.ValidationError(
                f"unknown golden-record field {value!r}; known: {', '.join(CANONICAL_FIELDS)} or external_ids.<system>"
            )
        return value


@admin.register(TargetFieldMapping)
class TargetFieldMappingAdmin(admin.ModelAdmin):
    """Stewards edit what each target receives here, without access to the target's URL or secrets."""

    form = TargetFieldMappingForm
    list_display = ("target", "order", "canonical_field", "target_path", "enabled")
    list_display_links = ("canonical_field",)
    list_editable = ("order", "target_path", "enabled")
    list_filter = ("target",)
    list_select_related = ("target",)
    ordering = ("target__name", "order")


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("started_at", "version", "operation", "status_code", "latency_ms", "outcome", "error")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "target", "customer_id", "operation", "version", "status", "attempts", "next_attempt_at",
                    "last_status", "updated_at")
    list_filter = ("status", "target")
    list_select_related = ("target",)
    search_fields = ("=customer__id", "correlation_id")
    inlines = [DeliveryAttemptInline]


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "message_id", "started_at", "version", "operation", "status_code", "latency_ms", "outcome")
    list_filter = ("outcome", "message__target")
    list_select_related = ("message",)


def _describe(queryset):
    return [f"{m.target.name} · customer {m.customer_id} · v{m.version} {m.operation} · "
            f"last status {m.last_status or 'none'} · {m.attempts} attempt(s)"
            for m in queryset.select_related("target")[:CONFIRM_LIST_LIMIT]]


def _log_each(modeladmin, request, queryset, message: str) -> None:
    """An admin LogEntry per message, so support's replays and discards are attributable."""
    for obj in queryset:
        modeladmin.log_change(request, obj, message)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "target", "customer_id", "operation", "version", "last_status", "short_error", "attempts",
                    "updated_at")
    list_filter = ("target",)
    list_select_related = ("target",)
    actions = ["replay", "discard"]

    @admin.display(description="last error / response")
    def short_error(self, obj):
        return (obj.last_error or "")[:200]

    def has_replay_permission(self, request):
        return request.user.has_perm("targets.replay_outboxmessage")

    def has_discard_permission(self, request):
        return request.user.has_perm("targets.discard_outboxmessage")

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or request.user.has_perm("targets.view_outboxmessage")

    @admin.action(permissions=["replay"], description="Replay selected dead letters")
    def replay(self, request, queryset):
        if request.POST.get("post") != "yes":
            count = queryset.count()
            return action_confirmation(self, request, queryset=queryset, action="replay",
                                       title=f"Replay {count} dead letter(s)?", items=_describe(queryset),
                                       explanation=(
                                           f"{count} message(s) go back to pending with attempts reset and are "
                                           "delivered now with the current golden record. The idempotency key of "
                                           "each version is reused, so nothing the target already applied repeats."),
                                       confirm_label="Yes, replay")
        selected = list(queryset)
        counts = dead_letter_replay(message_ids=[m.pk for m in selected])
        _log_each(self, request, selected, "Replayed from the dead-letter queue")
        text = f"Replayed {counts['replayed']} dead letter(s)."
        if counts["superseded"]:
            text += f" {counts['superseded']} were superseded by a newer pending message."
        self.message_user(request, text, messages.SUCCESS)
        return None

    @admin.action(permissions=["discard"], description="Discard selected dead letters")
    def discard(self, request, queryset):
        if request.POST.get("post") != "yes":
            count = queryset.count()
            return action_confirmation(self, request, queryset=queryset, action="discard",
                                       title=f"Discard {count} dead letter(s)?", items=_describe(queryset),
                                       explanation=(
                                           f"{count} message(s) are marked discarded and will not be delivered. "
                                           "They stay visible in the outbox."),
                                       confirm_label="Yes, discard")
        selected = list(queryset)
        count = dead_letter_discard(message_ids=[m.pk for m in selected])
        _log_each(self, request, selected, "Discarded from the dead-letter queue")
        self.message_user(request, f"Discarded {count} dead letter(s).", messages.SUCCESS)
        return None
