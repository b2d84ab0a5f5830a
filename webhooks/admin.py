"""Admin: sources (references shown, values never) and the read-only inbox with Replay.

Markup lives in templates (`admin/webhooks/inboxevent/*.html`), which escape
what senders sent; the display methods hand them plain values.
"""

import json

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import path, reverse

from core.admin import CONFIRM_LIST_LIMIT, ReadOnlyAdminMixin, action_confirmation

from .models import InboxEvent, Source
from .selectors import secret_ref_status
from .services import inbox_event_replay


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("name", "enabled", "signature_scheme", "secret_references", "secrets_available",
                    "schema_versions", "event_types", "default_region", "updated_at")
    list_filter = ("enabled", "signature_scheme")
    search_fields = ("name",)
    readonly_fields = ("secrets_available", "created_at", "updated_at")
    fields = ("name", "enabled", "signature_scheme", "secret_refs", "secrets_available",
              "schema_versions", "event_types", "default_region", "created_at", "updated_at")

    @admin.display(description="secret references")
    def secret_references(self, obj):
        return ", ".join(obj.secret_refs or []) or "-"

    @admin.display(description="variables set here")
    def secrets_available(self, obj):
        """Whether each referenced variable is set in this process's environment (never its value)."""
        status = secret_ref_status(secret_refs=obj.secret_refs)
        if not status:
            return "no secret"
        # Plain text: the admin escapes it.
        return ", ".join(f"{name}: {'set' if is_set else 'MISSING'}" for name, is_set in status)


class InboxStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return InboxEvent.Status.choices

    def queryset(self, request, queryset):
        return queryset.filter(status=self.value()) if self.value() else queryset


@admin.register(InboxEvent)
class InboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Machine-written: nothing is editable here; failed events can be replayed."""

    list_display = ("event_id", "source", "type", "status", "received_at", "attempts", "schema_version")
    list_filter = (InboxStatusFilter, "source", "type", ("received_at", admin.DateFieldListFilter))
    list_select_related = ("source",)
    search_fields = ("event_id",)
    search_help_text = "Exact event id, or part of the email in the payload (data.email / data.contact.email)."
    actions = ["replay"]
    show_full_result_count = False
    change_form_template = "admin/webhooks/inboxevent/change_form.html"
    fields = ("source", "event_id", "event_id_provided", "type", "schema_version", "occurred_at",
              "received_at", "status", "attempts", "processed_at", "last_error_display", "problems_display",
              "lease_owner", "lease_expires_at", "customer", "payload_pretty")
    readonly_fields = fields

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name and match.url_name.endswith("_changelist"):
            queryset = queryset.defer("payload", "problems", "last_error")
        return queryset

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        # JSON key lookups compile to ->> / JSON_EXTRACT on PostgreSQL / SQLite; icontains is
        # case-insensitive on both. v1 puts the email at data.email, v2 at data.contact.email.
        return queryset.filter(
            Q(event_id=term)
            | Q(payload__data__email__icontains=term)
            | Q(payload__data__contact__email__icontains=term)
        ), False

    def has_replay_permission(self, request):
        return request.user.has_perm("webhooks.replay_inboxevent")

    @admin.display(description="payload")
    def payload_pretty(self, obj):
        # The template escapes the JSON: a payload is sender-controlled text.
        return render_to_string("admin/webhooks/inboxevent/preformatted.html", {
            "text": json.dumps(obj.payload, indent=2, ensure_ascii=False, sort_keys=True)})

    @admin.display(description="problems")
    def problems_display(self, obj):
        problems = [{"severity": p.get("severity", ""), "field": p.get("field", ""), "message": p.get("message", "")}
                    for p in obj.problems or [] if isinstance(p, dict)]
        if not problems:
            return "-"
        return render_to_string("admin/webhooks/inboxevent/problems.html", {"problems": problems})

    @admin.display(description="last error")
    def last_error_display(self, obj):
        if not obj.last_error:
            return "-"
        return render_to_string("admin/webhooks/inboxevent/preformatted.html", {"text": obj.last_error})

    def get_urls(self):
        urls = [path("<path:object_id>/replay/", self.admin_site.admin_view(self.replay_view),
                     name="webhooks_inboxevent_replay")]
        return urls + super().get_urls()

    def _replay_confirmation(self, request, *, failed, skipped: int = 0, queryset=None, obj=None):
        count = 1 if obj is not None else failed.count()
        events = failed.select_related("source").only("id", "event_id", "type", "source__name")[:CONFIRM_LIST_LIMIT]
        return action_confirmation(
            self, request, queryset=queryset, action="replay", obj=obj, count=count,
            title=f"Replay {count} failed event{'' if count == 1 else 's'}?",
            explanation="Each is set back to received, its lease is cleared and it is queued for processing again.",
            items=[f"{event.source.name} · {event.type} · {event.event_id}" for event in events],
            count_note="will be replayed", skipped=skipped,
            skipped_note=f"{skipped} selected event{'' if skipped == 1 else 's'} that "
                         f"ha{'s' if skipped == 1 else 've'} not failed will be left alone.",
            confirm_label=f"Yes, replay {count}",
        )

    def _replay(self, request, failed, skipped: int = 0) -> int:
        replayed = inbox_event_replay(event_ids=list(failed.values_list("pk", flat=True)))
        for event in InboxEvent.objects.filter(pk__in=replayed).only("id", "event_id"):
            self.log_change(request, event, "Replayed (status set back to received and enqueued).")
        message = f"Replayed {len(replayed)} failed event(s)."
        if skipped:
            message += f" {skipped} selected event(s) had not failed and were left alone."
        self.message_user(request, message, messages.SUCCESS)
        return len(replayed)

    @admin.action(description="Replay selected failed events", permissions=["replay"])
    def replay(self, request, queryset):
        failed = queryset.filter(status=InboxEvent.Status.FAILED)
        count = failed.count()
        skipped = queryset.count() - count
        if count == 0:
            self.message_user(request, "None of the selected events has failed; nothing to replay.", messages.WARNING)
            return None
        if request.POST.get("post") != "yes":
            # Like delete_selected: say how many and what will happen, then act on the second POST.
            return self._replay_confirmation(request, failed=failed, skipped=skipped, queryset=queryset)
        self._replay(request, failed, skipped)
        return None

    def replay_view(self, request, object_id):
        """The "Replay" button of a failed event's page: a confirmation (GET), then the replay (POST)."""
        if not self.has_replay_permission(request):
            raise PermissionDenied
        event = self.get_object(request, unquote(object_id))
        if event is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        failed = InboxEvent.objects.filter(pk=event.pk, status=InboxEvent.Status.FAILED)
        back = HttpResponseRedirect(reverse("admin:webhooks_inboxevent_change", args=[event.pk]))
        if not failed.exists():
            self.message_user(request, "This event has not failed; nothing to replay.", messages.WARNING)
            return back
        if request.method == "POST" and request.POST.get("post") == "yes":
            self._replay(request, failed)
            return back
        return self._replay_confirmation(request, failed=failed, obj=event)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_replay"] = (obj is not None and obj.status == InboxEvent.Status.FAILED
                                 and self.has_replay_permission(request))
        return super().render_change_form(request, context, add, change, form_url, obj)
