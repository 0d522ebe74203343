"""The test app's receivers: connected because the app has a ``receivers`` module."""

from __future__ import annotations

from typing import Any

from triggerhooks import on
from triggerhooks.ext import post_fire

FIRED: list[tuple[str, str]] = []


@on(post_fire)
def remember_fire(sender: Any, session_uid: str, trigger_name: str, **kwargs: Any) -> None:
    FIRED.append((session_uid, trigger_name))
