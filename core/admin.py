"""Admin building blocks every app uses: read-only admins and the one confirmation page.

Machine-written tables (inbox, outbox, attempts, runs) are shown read-only;
every bulk or destructive action asks first on the same page, like Django's
`delete_selected`.
"""

from django.contrib.admin import helpers
from django.template.response import TemplateResponse

CONFIRM_LIST_LIMIT = 100


class ReadOnlyAdminMixin:
    """Nobody adds, edits or deletes these rows by hand; viewing follows the view permission."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def action_confirmation(modeladmin, request, *, queryset, action: str, title: str, explanation: str, items,
                        confirm_label: str):
    """Says how many and what will happen; the form POSTs the action again with post=yes.

    `items` is a sequence of one-line descriptions (only the first CONFIRM_LIST_LIMIT are shown).
    """
    count = queryset.count()
    return TemplateResponse(request, "admin/custsync/action_confirmation.html", {
        **modeladmin.admin_site.each_context(request),
        "title": title, "opts": modeladmin.model._meta, "count": count, "explanation": explanation,
        "items": list(items[:CONFIRM_LIST_LIMIT]), "more": max(0, count - CONFIRM_LIST_LIMIT), "action": action,
        "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "confirm_label": confirm_label,
        "media": modeladmin.media,
    })
