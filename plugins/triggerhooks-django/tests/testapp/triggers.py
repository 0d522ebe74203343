"""The test app's trigger tasks: found by the plugin because the app has a ``triggers`` module."""

from __future__ import annotations

from typing import Any

from triggerhooks import TaskContext, trigger_task


@trigger_task(name="testapp.echo")
def echo(context: TaskContext) -> dict[str, Any]:
    """Returns what it received."""
    return {"received": context.trigger_kwargs}


@trigger_task(name="testapp.flaky")
def flaky(context: TaskContext) -> dict[str, Any]:
    """Fails unless one of its triggers' kwargs says ``ok``."""
    if not any(isinstance(kwargs, dict) and kwargs.get("ok")
               for kwargs in context.trigger_kwargs.values()):
        raise RuntimeError("not ok")
    return {"ok": True}
