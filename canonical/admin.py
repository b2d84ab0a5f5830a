"""Admin of what canonical alone owns: the merge log.

The steward's pages that show and change several apps at once (the customer
page, conflicts, field rules) are the roof's: `custsync_project/workbench/`.
"""

from django.contrib import admin

from core.admin import ReadOnlyAdminMixin

from .models import MergeLog


@admin.register(MergeLog)
class MergeLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "survivor", "merged", "reason", "event_id")
    list_select_related = ("survivor", "merged")
    search_fields = ("=survivor__id", "=merged__id", "=event_id")
    readonly_fields = ("survivor", "merged", "reason", "event_id", "created_at")
