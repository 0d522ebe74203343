"""The test app's trigger tasks: found by the plugin because the app has a ``triggers`` module."""

from __future__ import annotations

from typing import Any

from triggerhooks import TaskContext, trigger_task


@trigger_task(name="testapp.echo")
def echo(context: TaskContext) -> dict[str, Any]:
    """Returns what it received."""
    return {"received": context.trigger_kwargs}


FIXED: set[str] = set()
"""Sessions where ``testapp.flaky`` works now (as after a fix was deployed)."""


@trigger_task(name="testapp.flaky")
def flaky(context: TaskContext) -> dict[str, Any]:
    """Fails unless one of its triggers' kwargs says ``ok`` or its session is ``FIXED``."""
    said_ok = any(isinstance(kwargs, dict) and kwargs.get("ok")
                  for kwargs in context.trigger_kwargs.values())
    if not said_ok and context.session_uid not in FIXED:
        raise RuntimeError("not ok")
    return {"ok": True}
