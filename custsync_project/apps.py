"""The project package as an app: the roles (groups), the admin dashboard's template tags, the settings checks."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _roles_fill(sender, app_config=None, using="default", apps=None, **kwargs):
    """After every migrate: permissions now exist for every migrated app; put them into the groups."""
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    from .roles import roles_sync

    # post_migrate is sent once per app with models (this package has none): act once, after the last.
    last = [config for config in global_apps.get_app_configs() if config.models_module is not None][-1]
    if app_config is not last:
        return
    # Django creates each app's permissions in its own post_migrate handler, in INSTALLED_APPS
    # order; create them all first so the order of apps never matters (idempotent).
    for config in global_apps.get_app_configs():
        create_permissions(config, verbosity=0, interactive=False, using=using, apps=global_apps)
    roles_sync(using=using)


class CustsyncProjectConfig(AppConfig):
    name = "custsync_project"
    verbose_name = "custsync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.core import checks as django_checks

        from . import checks

        post_migrate.connect(_roles_fill, dispatch_uid="custsync_project.roles_fill")
        for check in (checks.check_q_retry_exceeds_timeout, checks.check_pump_budgets, checks.check_inbox_settings,
                      checks.check_webhook_tolerance):
            django_checks.register(check)
