from django.apps import AppConfig


class TargetsConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'targets'

    def ready(self):
        from django.core import checks as django_checks

        from . import checks

        django_checks.register(checks.check_target_secrets)
        django_checks.register(checks.check_target_rate_limits)
