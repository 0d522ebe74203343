"""No tables: one unmanaged model, so the admin lists triggerhooks and Django has its permissions.

Sessions live in the triggerhooks storage, not in the database. The model
:class:`Session` is never queried; it gives the admin an entry under
"triggerhooks" and gives Django the permissions its pages check:
``triggerhooks_django.view_session``, ``triggerhooks_django.replay_instance`` and
``triggerhooks_django.skip_instance``.
"""

from __future__ import annotations

from django.db import models

__all__ = ["Session"]


class Session(models.Model):
    """A triggerhooks session (stored by triggerhooks: this model has no table)."""

    uid: models.CharField[str, str] = models.CharField(max_length=255, primary_key=True)

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [
            ("replay_instance", "Can replay a failed task instance"),
            ("skip_instance", "Can skip a failed task instance"),
        ]
        verbose_name = "session"
        verbose_name_plural = "sessions"

    def __str__(self) -> str:
        return str(self.uid)
