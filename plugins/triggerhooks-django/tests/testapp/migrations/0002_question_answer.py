from __future__ import annotations

from typing import ClassVar

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies: ClassVar[list[tuple[str, str]]] = [("testapp", "0001_initial")]

    operations: ClassVar[list[migrations.operations.base.Operation]] = [
        migrations.CreateModel(
            name="Question",
            fields=[("slug", models.SlugField(max_length=150, primary_key=True, serialize=False))],
        ),
        migrations.CreateModel(
            name="Answer",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("value", models.CharField(blank=True, max_length=255)),
                ("question", models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="answers",
                    to="testapp.question")),
            ],
        ),
    ]
