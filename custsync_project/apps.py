"""The project package as an app: the roles (groups) and the sweeper schedules after migrate, the admin dashboard's template tags, the settings checks."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _is_last_app(app_config) -> bool:
    """post_migrate is sent once per app with models (this package has none): act once, after the last."""
    from django.apps import apps as global_apps

    return app_config is [config for config in global_apps.get_app_configs() if config.models_module is not None][-1]


def _roles_fill(sender, app_config=None, using="default", apps=None, **kwargs):
    """After every migrate: permissions now exist for every migrated app; put them into the groups."""
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    from .roles import roles_sync

    if not _is_last_app(app_config):
        return
    # Django creates each app's permissions in its own post_migrate handler, in INSTALLED_APPS
    # order; create them all first so the order of apps never matters (idempotent).
    for config in global_apps.get_app_configs():
        create_permissions(config, verbosity=0, interactive=False, using=using, apps=global_apps)
    roles_sync(using=using)


def _schedules_fill(sender, app_config=None, using="default", verbosity=1, **kwargs):
    """After every migrate: the schedules the system depends on (the sweepers) exist, with no extra command."""
    from django.conf import settings

    from .schedules import schedules_ensure

    if not _is_last_app(app_config):
        return
    lines = schedules_ensure(specs=[spec for spec in settings.CUSTSYNC_SCHEDULES if spec.get("after_migrate")],
                             using=using)
    if verbosity >= 2:
        for line in lines:
            print(line)


class CustsyncProjectConfig(AppConfig):
    name = "custsync_project"
    verbose_name = "custsync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.core import checks as django_checks

        from . import checks

        post_migrate.connect(_roles_fill, dispatch_uid="custsync_project.roles_fill")
        post_migrate.connect(_schedules_fill, dispatch_uid="custsync_project.schedules_fill")
        for check in (checks.check_q_retry_exceeds_timeout, checks.check_pump_budgets, checks.check_inbox_settings,
                      checks.check_webhook_tolerance):
            django_checks.register(check)
