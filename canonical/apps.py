from django.apps import AppConfig


class CanonicalConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'canonical'
