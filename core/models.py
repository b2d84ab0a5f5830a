"""The abstract base of every table people look at."""

from django.db import models


class TimeStampedModel(models.Model):
    """Abstract base: creation and update times for every table people look at."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
