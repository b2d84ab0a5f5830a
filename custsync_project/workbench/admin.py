"""The steward's workbench in the admin: golden records, conflicts, field rules.

These pages read and change several apps at once (a customer's inbox events
and deliveries, a decision that changes the golden record and queues its
deliveries), so they live in the roof, above every app.

Machine-written tables are read-only. The writes are the field rules (a form
with ordered source rows and a preview of what a change would flip), the
conflict decisions (buttons on the change page, actions with a confirmation
page) and "resend to targets"; each calls one service
(`custsync_project.workbench.services`), which owns the transaction spanning
the golden record and the outbox.

Permissions are checked here, in one place per write: the action's declared
`permissions=[...]` and the matching `has_<x>_permission`, which the buttons'
views call too, before any confirmation page is shown. The workbench's
services trust their caller (canonical's `conflict_resolve` keeps its own
check, part of its contract).

Tables are templates (`admin/workbench/*.html`) fed plain rows; the template
engine escapes every value, sender-controlled or not.
"""

import json
from dataclasses import dataclass

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html

from canonical.models import Conflict, Customer, ExternalId, SourcePriorityRule
from canonical.rule_preview import rule_change_preview
from core.admin import CONFIRM_LIST_LIMIT, ReadOnlyAdminMixin, action_confirmation

from .forms import RuleForm
from .selectors import RULE_FIELD_NAMES, customer_page, golden_value
from .services import conflicts_decide, customer_resend

DECISIONS = {"accept_incoming": "accept incoming", "keep_current": "keep current"}


def _short(value, limit: int = 80) -> str:
    if value is None:
        return "(empty)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@dataclass(frozen=True)
class Link:
    """A cell of a table: text, and where it leads (no link when `url` is empty)."""

    text: str
    url: str = ""


NO_LINK = Link("-")


class CustomerPartInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Part of the customer page: whoever may view customers sees it."""

    extra = 0

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("canonical.view_customer")


class ExternalIdInline(CustomerPartInline):
    model = ExternalId
    fields = readonly_fields = ("system", "value", "created_at")
    verbose_name_plural = "external ids"


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "email", "phone", "first_name", "last_name", "version", "last_source", "updated_at", "state")
    list_filter = ("last_source",)
    search_fields = ("=id", "email", "phone", "=external_ids__value")
    search_help_text = "email, phone, customer id or an external id (exact)"
    fieldsets = (
        ("Golden record", {"fields": ("state", "version", "golden_record", "created_at", "updated_at")}),
        ("Merge history", {"fields": ("merge_history",)}),
        ("Delivery to targets", {"fields": ("outbox_state",)}),
        ("History of each field (every source's latest value, steward decisions, conflicts)",
         {"fields": ("field_history",), "classes": ("collapse",)}),
    )
    readonly_fields = ("state", "version", "golden_record", "created_at", "updated_at", "merge_history",
                       "outbox_state", "field_history")
    inlines = [ExternalIdInline]
    actions = ["resend_to_targets"]
    show_full_result_count = False
    change_form_template = "admin/canonical/customer/change_form.html"

    def get_urls(self):
        urls = [path("<path:object_id>/resend/", self.admin_site.admin_view(self.resend_view),
                     name="canonical_customer_resend")]
        return urls + super().get_urls()

    def get_search_results(self, request, queryset, search_term):
        queryset, duplicates = super().get_search_results(request, queryset, search_term)
        return queryset.distinct(), False

    def has_resend_permission(self, request):
        return request.user.has_perm("canonical.resend_customer")

    # --- the page -------------------------------------------------------------------

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            user = request.user
            # Fixed number of queries for the whole page, computed once.
            obj._page = customer_page(
                customer=obj,
                with_events=user.has_perm("webhooks.view_inboxevent"),
                with_outbox=user.has_perm("targets.view_outboxmessage"),
            )
        return obj

    def _event_link(self, obj, source: str, event_id: str) -> Link:
        if not event_id:
            return NO_LINK
        pk = obj._page.event_pks.get((source, event_id))
        if pk is None:
            return Link(event_id)
        return Link(event_id, reverse("admin:webhooks_inboxevent_change", args=[pk]))

    @admin.display(description="state")
    def state(self, obj):
        if obj.merged_into_id:
            return f"merged into {obj.merged_into_id}"
        return "erased" if obj.deleted_at else "active"

    @admin.display(description="golden record (value and where it came from)")
    def golden_record(self, obj):
        page = getattr(obj, "_page", None)
        if page is None:
            return "-"
        rows = []
        for name in RULE_FIELD_NAMES:
            winner = page.winner(name)
            if winner is None:
                source, when, event, via = "-", "-", NO_LINK, ""
            elif hasattr(winner, "anchor_at"):  # a steward's accepted conflict
                who = winner.decided_by.get_username() if winner.decided_by else "a steward"
                source, when, event = winner.source, _when(winner.anchor_at), self._event_link(obj, winner.source, winner.event_id)
                via = f"chosen by {who}"
            else:
                source, when, event = winner.source, _when(winner.occurred_at), self._event_link(obj, winner.source, winner.event_id)
                via = "field rule"
            rows.append({"field": name, "value": _short(golden_value(obj, name), 120), "source": source,
                         "when": when, "event": event, "via": via})
        return render_to_string("admin/workbench/golden_record.html", {"rows": rows})

    @admin.display(description="merges")
    def merge_history(self, obj):
        page = getattr(obj, "_page", None)
        if page is None or not page.merges:
            return "no merges"
        rows = []
        for merge in page.merges:
            if merge.survivor_id == obj.pk:
                text, other = "absorbed customer", merge.merged_id
            else:
                text, other = "was merged into customer", merge.survivor_id
            rows.append({"when": _when(merge.created_at), "text": text,
                         "other": Link(str(other), reverse("admin:canonical_customer_change", args=[other])),
                         "reason": merge.reason, "event_id": merge.event_id})
        return render_to_string("admin/workbench/merge_history.html", {"rows": rows})

    @admin.display(description="outbox per target")
    def outbox_state(self, obj):
        page = getattr(obj, "_page", None)
        if page is None or not page.outbox_visible:
            return "-"
        if not page.outbox:
            return "no targets configured"
        rows = []
        for row in page.outbox:
            message, delivered = row["message"], row["delivered"]
            if message is not None:
                latest = Link(f"{message.get_status_display()} v{message.version} {message.operation}",
                              reverse("admin:targets_outboxmessage_change", args=[message.pk]))
                note = (f"({message.attempts} attempt(s)"
                        + (f", last HTTP {message.last_status}" if message.last_status else "") + ")")
            else:
                latest, note = Link("never sent"), ""
            acked = (f"v{delivered.version} {delivered.operation} at {_when(delivered.delivered_at)}"
                     if delivered is not None else "-")
            in_sync = "yes" if delivered is not None and delivered.version == obj.version else "no"
            rows.append({"target": row["target"].name, "latest": latest, "note": note, "acked": acked,
                         "in_sync": in_sync})
        return render_to_string("admin/workbench/outbox_state.html", {"version": obj.version, "rows": rows})

    @admin.display(description="field history")
    def field_history(self, obj):
        page = getattr(obj, "_page", None)
        if page is None:
            return "-"
        sections = []
        for name in RULE_FIELD_NAMES:
            entries = []
            for sv in (v for v in page.source_values if v.field == name):
                flag = "winner" if sv.is_winner else ("rejected by the rule" if sv.rejected else "")
                entries.append({"when": _when(sv.occurred_at), "source": sv.source, "value": _short(sv.value),
                                "link": self._event_link(obj, sv.source, sv.event_id), "note": flag})
            override = page.overrides.get(name)
            if override is not None:
                who = override.decided_by.get_username() if override.decided_by else "a steward"
                entries.append({"when": _when(override.updated_at), "source": override.source,
                                "value": _short(override.value),
                                "link": self._event_link(obj, override.source, override.event_id),
                                "note": f"steward's choice ({who}){', winner' if override.is_winner else ''}"})
            for conflict in (c for c in page.conflicts if c.field == name):
                who = conflict.resolved_by.get_username() if conflict.resolved_by else ""
                status = conflict.get_status_display() + (f" by {who} at {_when(conflict.resolved_at)}" if who else "")
                entries.append({
                    "when": _when(conflict.created_at), "source": conflict.incoming_source,
                    "value": f"{_short(conflict.incoming_value)} (current {_short(conflict.current_value)} "
                             f"from {conflict.current_source or '-'})",
                    "link": Link(f"conflict {conflict.pk}", reverse("admin:canonical_conflict_change", args=[conflict.pk])),
                    "note": status,
                })
            if entries:
                entries.sort(key=lambda e: e["when"], reverse=True)
                sections.append({"name": name, "entries": entries})
        identity = [{"when": _when(c.created_at),
                     "text": f"not merged with customer {c.other_customer_id or c.customer_id}: {c.get_status_display()}"}
                    for c in page.conflicts if c.field == Conflict.IDENTITY]
        if identity:
            sections.append({"name": "identity", "identity": identity})
        if not sections:
            return "no values recorded"
        return render_to_string("admin/workbench/field_history.html", {"sections": sections})

    # --- resend -----------------------------------------------------------------------

    def _resend(self, request, customer_ids):
        result = customer_resend(customer_ids=customer_ids, user=request.user)
        for customer in Customer.objects.filter(pk__in=list(customer_ids)).only("id"):
            self.log_change(request, customer, "Resent to targets.")
        self.message_user(request, f"Queued {result['customers']} customer(s) for resending to every enabled target "
                                   f"({result['messages']} outbox message(s) written).", messages.SUCCESS)

    @admin.action(description="Resend selected customers to targets", permissions=["resend"])
    def resend_to_targets(self, request, queryset):
        if request.POST.get("post") != "yes":
            return action_confirmation(
                self, request, queryset=queryset, action="resend_to_targets",
                title="Resend customers to targets?",
                explanation="Each customer's current golden record is queued for every enabled target, even where "
                            "the target already acknowledged this version (erased and merged records as deletes). "
                            "Delivery starts right away; the targets' idempotency keys stop anything applying twice.",
                items=[f"customer {c.pk} · v{c.version} · {c.email or '-'}" for c in queryset[:CONFIRM_LIST_LIMIT]],
                confirm_label="Yes, resend",
            )
        self._resend(request, list(queryset.values_list("pk", flat=True)))
        return None

    def resend_view(self, request, object_id):
        """The "Resend to targets" button of a customer's page: a confirmation (GET), then the resend (POST)."""
        customer = self.get_object(request, unquote(object_id))
        if customer is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_resend_permission(request):
            raise PermissionDenied
        if request.method == "POST" and request.POST.get("post") == "yes":
            self._resend(request, [customer.pk])
            return HttpResponseRedirect(reverse("admin:canonical_customer_change", args=[customer.pk]))
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        return action_confirmation(
            self, request, obj=customer, title=f"Resend customer {customer.pk} to targets?",
            explanation=f"Its current golden record (version {customer.version}) is queued for every enabled "
                        "target, even where the target already acknowledged it.",
            items=[f"customer {customer.pk} · v{customer.version} · {customer.email or '-'}"],
            confirm_label="Yes, resend",
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_resend": self.has_resend_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)


class StatusOpenByDefault(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [*Conflict.Status.choices, ("all", "all")]

    def choices(self, changelist):
        value = self.value() or Conflict.Status.OPEN
        for lookup, title in self.lookup_choices:
            yield {"selected": value == lookup, "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                   "display": title}

    def queryset(self, request, queryset):
        value = self.value() or Conflict.Status.OPEN
        return queryset if value == "all" else queryset.filter(status=value)


@admin.register(Conflict)
class ConflictAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Open conflicts by default; decide one on its page, or many with an action and a confirmation."""

    list_display = ("id", "customer_link", "field", "current_value_display", "current_from",
                    "incoming_value_display", "incoming_from", "status", "created_at")
    list_filter = (StatusOpenByDefault, "field", "incoming_source")
    list_select_related = ("customer",)
    search_fields = ("=customer__id", "=event_id")
    fieldsets = (
        (None, {"fields": ("customer", "other_customer", "field", "status", "side_by_side", "event_id", "created_at")}),
        ("Decision", {"fields": ("resolved_by", "resolved_at")}),
    )
    readonly_fields = ("customer", "other_customer", "field", "status", "side_by_side", "event_id", "created_at",
                       "resolved_by", "resolved_at")
    actions = ["accept_incoming", "keep_current"]
    change_form_template = "admin/canonical/conflict/change_form.html"

    def get_urls(self):
        urls = [path("<path:object_id>/resolve/<str:decision>/", self.admin_site.admin_view(self.resolve_view),
                     name="canonical_conflict_resolve")]
        return urls + super().get_urls()

    @admin.display(description="customer", ordering="customer_id")
    def customer_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:canonical_customer_change", args=[obj.customer_id]),
                           obj.customer_id)

    @admin.display(description="current value")
    def current_value_display(self, obj):
        return _short(obj.current_value)

    @admin.display(description="current from")
    def current_from(self, obj):
        return f"{obj.current_source or '-'} · {_when(obj.current_occurred_at)}"

    @admin.display(description="incoming value")
    def incoming_value_display(self, obj):
        if obj.field == Conflict.IDENTITY:
            return f"customer {obj.other_customer_id}"
        return _short(obj.incoming_value)

    @admin.display(description="incoming from")
    def incoming_from(self, obj):
        return f"{obj.incoming_source or '-'} · {_when(obj.incoming_occurred_at)}"

    @admin.display(description="current and incoming")
    def side_by_side(self, obj):
        rows = [{"label": "value", "current": _short(obj.current_value, 500), "incoming": _short(obj.incoming_value, 500)},
                {"label": "source", "current": obj.current_source or "-", "incoming": obj.incoming_source or "-"},
                {"label": "occurred", "current": _when(obj.current_occurred_at),
                 "incoming": _when(obj.incoming_occurred_at)}]
        return render_to_string("admin/workbench/conflict_side_by_side.html", {"rows": rows})

    def has_resolve_conflict_permission(self, request):
        return request.user.has_perm("canonical.resolve_conflict")

    def _resolve(self, request, conflict_ids, decision: str) -> int:
        result = conflicts_decide(conflict_ids=conflict_ids, decision=decision, user=request.user)
        for conflict in Conflict.objects.filter(pk__in=result.decided):
            self.log_change(request, conflict, f"Resolved: {DECISIONS[decision]}.")
        if result.decided:
            self.message_user(request, f"{len(result.decided)} conflict(s) resolved ({DECISIONS[decision]}).",
                              messages.SUCCESS)
        for conflict_id, reason in result.failed.items():
            self.message_user(request, f"conflict {conflict_id}: {reason}", messages.ERROR)
        return len(result.decided)

    def _action(self, request, queryset, decision: str):
        if request.POST.get("post") != "yes":
            what = ("the incoming value becomes the golden value (until a source ranked at least as well changes "
                    "the field again) and is sent to the targets" if decision == "accept_incoming"
                    else "the current value stays; the conflicts are closed")
            opened = queryset.filter(status=Conflict.Status.OPEN)
            return action_confirmation(
                self, request, queryset=queryset, action=decision,
                title=f"{DECISIONS[decision].capitalize()} for {queryset.count()} conflict(s)?",
                explanation=f"{opened.count()} of the selected conflicts are open: {what}. Each decision is "
                            f"recorded with your name and the time. Conflicts that are not open are left alone.",
                items=[f"conflict {c.pk} · customer {c.customer_id} · {c.field}: {_short(c.current_value)} "
                       f"({c.current_source or '-'}) vs {_short(c.incoming_value)} ({c.incoming_source or '-'})"
                       for c in queryset[:CONFIRM_LIST_LIMIT]],
                confirm_label=f"Yes, {DECISIONS[decision]}",
            )
        self._resolve(request, list(queryset.values_list("pk", flat=True)), decision)
        return None

    @admin.action(description="Accept incoming value", permissions=["resolve_conflict"])
    def accept_incoming(self, request, queryset):
        return self._action(request, queryset, "accept_incoming")

    @admin.action(description="Keep current value", permissions=["resolve_conflict"])
    def keep_current(self, request, queryset):
        return self._action(request, queryset, "keep_current")

    def resolve_view(self, request, object_id, decision):
        """The buttons on a conflict's page: POST only, the permission checked here, not just hidden."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if decision not in DECISIONS or not self.has_resolve_conflict_permission(request):
            raise PermissionDenied
        conflict = self.get_object(request, unquote(object_id))
        if conflict is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        self._resolve(request, [conflict.pk], decision)
        return HttpResponseRedirect(reverse("admin:canonical_conflict_changelist"))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # The decision buttons: open conflicts only; identity conflicts can only be kept.
        context["can_resolve"] = (obj is not None and obj.status == Conflict.Status.OPEN
                                  and self.has_resolve_conflict_permission(request))
        context["can_accept"] = context["can_resolve"] and obj.field != Conflict.IDENTITY
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(SourcePriorityRule)
class SourcePriorityRuleAdmin(admin.ModelAdmin):
    """Stewards edit the order of sources per field; "Preview" shows how many customers would flip."""

    form = RuleForm
    list_display = ("field", "strategy", "sources_display", "updated_at")
    change_form_template = "admin/canonical/sourcepriorityrule/change_form.html"

    @admin.display(description="sources (best first)")
    def sources_display(self, obj):
        return ", ".join(obj.sources) or "(any source, equal rank)"

    def get_readonly_fields(self, request, obj=None):
        return ("field",) if obj is not None else ()

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        previewing = request.method == "POST" and "_preview" in request.POST

        class PreviewingRuleForm(form_class):
            def clean(self):
                cleaned = super().clean()
                if previewing and not self.errors:
                    self.preview = rule_change_preview(
                        field=cleaned.get("field") or getattr(obj, "field", ""),
                        strategy=cleaned.get("strategy"), sources=cleaned.get("sources") or [],
                    )
                    # Keeps the form unsaved and re-rendered with what was typed (the note is not shown).
                    self.add_error(None, "Preview only: nothing was saved.")
                return cleaned

        return PreviewingRuleForm

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        form = context["adminform"].form
        if getattr(form, "preview", None) is not None:
            context["rule_preview"] = form.preview
            context["errors"] = None
        return super().render_change_form(request, context, add, change, form_url, obj)
