"""URLs of the canonical app."""

urlpatterns = []
