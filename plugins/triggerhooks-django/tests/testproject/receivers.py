"""A receiver module named by TRIGGERHOOKS['receiver_modules']: it records finalized sessions."""

from __future__ import annotations

from typing import Any

from triggerhooks import on
from triggerhooks.ext import session_finalized

FINALIZED: list[str] = []


@on(session_finalized)
def remember_finalized(sender: Any, session_uid: str, **kwargs: Any) -> None:
    FINALIZED.append(session_uid)
