"""The test app's receivers: connected because the app has a ``receivers`` module."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save

from triggerhooks import filter_events, on
from triggerhooks.ext import post_fire

from .models import Answer

FIRED: list[tuple[str, str]] = []
ANSWERED: list[tuple[str, str, bool]] = []
"""``(question, value, created)`` of every saved answer, but those to ``"not-recorded"``."""


@on(post_fire)
def remember_fire(sender: Any, session_uid: str, trigger_name: str, **kwargs: Any) -> None:
    FIRED.append((session_uid, trigger_name))


@on(post_save, sender=Answer)
@filter_events(lambda instance: instance.question_id != "not-recorded")
def remember_answer(sender: type[Answer], instance: Answer, created: bool, **kwargs: Any) -> None:
    ANSWERED.append((instance.question_id, instance.value, created))
