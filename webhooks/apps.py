from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'webhooks'
    verbose_name = 'Webhooks'

    def ready(self):
        from django.core import checks as django_checks
        from django.db.models.signals import post_delete, post_save

        from . import checks
        from .models import Source
        from .selectors import source_cache_clear

        # A source changed in this process (admin, sync config import) counts at once here.
        post_save.connect(source_cache_clear, sender=Source, dispatch_uid="webhooks-source-cache-save")
        post_delete.connect(source_cache_clear, sender=Source, dispatch_uid="webhooks-source-cache-delete")
        django_checks.register(checks.check_source_schema_versions)
        django_checks.register(checks.check_source_secrets)
