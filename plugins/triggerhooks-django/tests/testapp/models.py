from __future__ import annotations

from django.db import models


class Order(models.Model):
    """Saved in the same transaction as a fire_on_commit, to see both land or neither."""

    number = models.CharField(max_length=40, unique=True)
