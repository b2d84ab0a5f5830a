"""URLs of the webhooks app."""

urlpatterns = []
