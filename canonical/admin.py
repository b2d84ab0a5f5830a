"""Admin for data stewards: golden records with provenance, conflicts, field rules, merge log.

Machine-written tables are read-only; the only writes are the field rules and
the conflict actions, which call `canonical.services.conflict_resolve` and
hand its changes to the outbox in the same transaction.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html

from .models import Conflict, Customer, ExternalId, MergeLog, SourcePriorityRule, SourceValue
from .services import CanonicalError, conflict_resolve


def _short(value, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CustomerPartInline(ReadOnlyMixin, admin.TabularInline):
    """Part of the customer page: whoever may view customers sees it."""

    extra = 0

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("canonical.view_customer")


class ExternalIdInline(CustomerPartInline):
    model = ExternalId
    fields = readonly_fields = ("system", "value", "created_at")


class SourceValueInline(CustomerPartInline):
    """Provenance: every source's latest value per field; the winner is the golden value."""

    model = SourceValue
    verbose_name_plural = "provenance (each source's latest value per field)"
    fields = readonly_fields = ("field", "source", "value_short", "occurred_at", "event_id", "is_winner", "rejected")
    ordering = ("field", "-is_winner", "source")

    @admin.display(description="value")
    def value_short(self, obj):
        return _short(obj.value)


@admin.register(Customer)
class CustomerAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "email", "phone", "first_name", "last_name", "version", "last_source", "updated_at", "state")
    list_filter = ("last_source",)
    search_fields = ("=id", "email", "phone", "=external_ids__value")
    search_help_text = "email, phone, customer id or an external id (exact)"
    readonly_fields = ("version", "email", "phone", "first_name", "last_name", "locale", "addresses",
                       "marketing_opt_in", "marketing_opt_in_at", "last_source", "deleted_at", "merged_into",
                       "created_at", "updated_at")
    inlines = [ExternalIdInline, SourceValueInline]
    show_full_result_count = False

    @admin.display(description="state")
    def state(self, obj):
        if obj.merged_into_id:
            return f"merged into {obj.merged_into_id}"
        return "erased" if obj.deleted_at else "active"

    def get_search_results(self, request, queryset, search_term):
        queryset, duplicates = super().get_search_results(request, queryset, search_term)
        return queryset.distinct(), False


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
class ConflictAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "customer_link", "field", "current", "incoming", "status", "created_at")
    list_filter = (StatusOpenByDefault, "field")
    list_select_related = ("customer",)
    search_fields = ("=customer__id", "=event_id")
    readonly_fields = ("customer", "other_customer", "field", "current_value", "current_source", "current_occurred_at",
                       "incoming_value", "incoming_source", "incoming_occurred_at", "event_id", "status",
                       "resolved_by", "resolved_at", "created_at")
    actions = ["accept_incoming", "keep_current"]

    @admin.display(description="customer")
    def customer_link(self, obj):
        return format_html('<a href="../customer/{}/change/">{}</a>', obj.customer_id, obj.customer_id)

    @admin.display(description="current (value · source · occurred)")
    def current(self, obj):
        return f"{_short(obj.current_value)} · {obj.current_source or '-'} · {obj.current_occurred_at or '-'}"

    @admin.display(description="incoming (value · source · occurred)")
    def incoming(self, obj):
        return f"{_short(obj.incoming_value)} · {obj.incoming_source or '-'} · {obj.incoming_occurred_at or '-'}"

    def has_resolve_conflict_permission(self, request):
        return request.user.has_perm("canonical.resolve_conflict")

    def _resolve(self, request, queryset, decision: str):
        # Each conflict in its own transaction: the golden change and its outbox rows commit together.
        from targets.services import outbox_enqueue  # a caller may use several apps (DESIGN.md "Apps")

        done, failed = 0, []
        for conflict_id in queryset.values_list("pk", flat=True):
            try:
                with transaction.atomic():
                    outbox_enqueue(changes=conflict_resolve(conflict_id=conflict_id, decision=decision, user=request.user))
                done += 1
            except CanonicalError as error:
                failed.append(f"conflict {conflict_id}: {error}")
        if done:
            self.message_user(request, f"{done} conflict(s) resolved ({decision.replace('_', ' ')}).", messages.SUCCESS)
        for message in failed:
            self.message_user(request, message, messages.ERROR)

    @admin.action(description="Accept incoming value", permissions=["resolve_conflict"])
    def accept_incoming(self, request, queryset):
        self._resolve(request, queryset, "accept_incoming")

    @admin.action(description="Keep current value", permissions=["resolve_conflict"])
    def keep_current(self, request, queryset):
        self._resolve(request, queryset, "keep_current")


class RuleForm(forms.ModelForm):
    sources = forms.CharField(
        required=False, widget=forms.TextInput(attrs={"size": 60}),
        help_text="Comma-separated source names, best first, e.g. crm, shop, support. "
                  "Empty: every source may set the field, with equal rank.",
    )

    class Meta:
        model = SourcePriorityRule
        fields = ("field", "strategy", "sources")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance and isinstance(self.instance.sources, list):
            self.initial["sources"] = ", ".join(self.instance.sources)

    def clean_sources(self):
        names = [name.strip() for name in self.cleaned_data["sources"].split(",") if name.strip()]
        bad = [name for name in names if not name.replace("_", "").replace("-", "").isalnum()]
        if bad:
            raise forms.ValidationError(f"not a source name: {', '.join(bad)}")
        if len(set(names)) != len(names):
            raise forms.ValidationError("a source may appear only once")
        return names


@admin.register(SourcePriorityRule)
class SourcePriorityRuleAdmin(admin.ModelAdmin):
    form = RuleForm
    list_display = ("field", "strategy", "sources_display", "updated_at")

    @admin.display(description="sources (best first)")
    def sources_display(self, obj):
        return ", ".join(obj.sources) or "(any source, equal rank)"


@admin.register(MergeLog)
class MergeLogAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("created_at", "survivor", "merged", "reason", "event_id")
    list_select_related = ("survivor", "merged")
    search_fields = ("=survivor__id", "=merged__id", "=event_id")
    readonly_fields = ("survivor", "merged", "reason", "event_id", "created_at")
