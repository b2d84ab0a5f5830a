"""Admin building blocks every app uses: read-only admins and the one confirmation page.

Machine-written tables (inbox, outbox, attempts, runs) are shown read-only;
every bulk or destructive action asks first on the same page, like Django's
`delete_selected`. Every confirmation in custsync (bulk actions and the
buttons of an object's page) renders `admin/custsync/action_confirmation.html`
through `action_confirmation`.
"""

from collections.abc import Mapping, Sequence

from django.contrib.admin import helpers
from django.db.models import Model, QuerySet
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


def action_confirmation(modeladmin, request, *, title: str, explanation: str, items: Sequence[str],
                        confirm_label: str, queryset: QuerySet | None = None, action: str = "",
                        obj: Model | None = None, count: int | None = None, count_id: str = "confirm-count",
                        count_note: str = "will be acted on", skipped: int = 0, skipped_note: str = "",
                        select_across: bool = False, extra_inputs: Mapping[str, str] | None = None):
    """Says how many and what will happen; the form POSTs the same action (or button URL) again with post=yes.

    Two shapes:
    - a changelist action: `queryset` is the selection and `action` the action's name; the selected ids go back
      as hidden inputs, or, when the selection is "all matching" and too large to list, `select_across=1` with
      `index=0` and the first CONFIRM_LIST_LIMIT ids (what Django's changelist needs to re-run the action on
      every matching row);
    - an object page's button: `obj` is the object (breadcrumbs and "back" lead to its page) and no action
      inputs are sent; the form posts to the button's own URL.

    `count` is how many will be acted on (default: the selection's size); `skipped` how many selected rows
    will be left alone, with `skipped_note` the sentence saying so (shown only when `skipped`). `count_id`
    names the count's element for tests and scripts. `items` are one-line descriptions of what will be acted
    on (the first CONFIRM_LIST_LIMIT are shown, then "… and n more"). `extra_inputs` become hidden inputs.
    Everything is text: the template escapes it.
    """
    if count is None:
        count = queryset.count() if queryset is not None else 1
    shown = list(items[:CONFIRM_LIST_LIMIT])
    selected = []
    if queryset is not None and obj is None:
        pks = queryset.values_list("pk", flat=True)
        # Django's changelist runs an action only with at least one checked row, select_across or not; with
        # select_across the action takes every matching row, so a bounded few stand for the selection.
        selected = [str(pk) for pk in (pks[:CONFIRM_LIST_LIMIT] if select_across else pks)]
    return TemplateResponse(request, "admin/custsync/action_confirmation.html", {
        **modeladmin.admin_site.each_context(request),
        "title": title, "opts": modeladmin.model._meta, "object": obj,
        "count": count, "count_id": count_id, "count_note": count_note, "selected_count": count + skipped,
        "skipped": skipped, "skipped_note": skipped_note, "explanation": explanation,
        "items": shown, "more": max(0, count - len(shown)),
        "action": "" if obj is not None else action, "selected": selected, "select_across": select_across,
        "extra_inputs": sorted((extra_inputs or {}).items()),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "confirm_label": confirm_label,
        "media": modeladmin.media,
    })
