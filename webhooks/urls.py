"""URLs of the webhooks app (mounted at /webhooks/)."""

from django.urls import path, re_path

from .views import CustomerWebhookView, not_found

app_name = "webhooks"

urlpatterns = [
    path("customer", CustomerWebhookView.as_view(), name="customer"),
    # Everything else under /webhooks/ answers a JSON 404 itself, so CommonMiddleware's
    # APPEND_SLASH never redirects (or errors on) a POST here.
    re_path(r"^.*$", not_found, name="not-found"),
]
