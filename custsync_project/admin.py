"""Project-wide admin: the steward's workbench, and DRF's token admin taken away.

The workbench (customers, conflicts, field rules) shows and changes every app,
so it is registered from the roof (`custsync_project/workbench/admin.py`).
"""

from django.contrib import admin
from rest_framework.authtoken.admin import TokenProxy

from custsync_project.workbench import admin as workbench_admin  # noqa: F401  (registers the workbench)

# DRF's token admin shows every API token in clear text: tokens are credentials
# and never belong on a page. Create them with `manage.py drf_create_token <user>`.
if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)


def _token_label(token) -> str:
    return f"API token of user {token.user_id}"


# A token's default str() is the key itself, which Django shows on the user's
# delete confirmation page ("Token: <key>"). Show whose token it is instead.
Token = TokenProxy.__mro__[1]
Token.__str__ = _token_label
