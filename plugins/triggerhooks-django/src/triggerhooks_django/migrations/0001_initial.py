"""The unmanaged ``Session`` model: no table, only its permissions (see ``models.py``)."""

from __future__ import annotations

from typing import ClassVar

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: ClassVar[list[tuple[str, str]]] = []

    operations: ClassVar[list[migrations.operations.base.Operation]] = [
        migrations.CreateModel(
            name="Session",
            fields=[
                ("uid", models.CharField(max_length=255, primary_key=True, serialize=False)),
            ],
            options={
                "verbose_name": "session",
                "verbose_name_plural": "sessions",
                "permissions": [("replay_instance", "Can replay a failed task instance"),
                                ("skip_instance", "Can skip a failed task instance")],
                "managed": False,
                "default_permissions": ("view",),
            },
        ),
    ]
