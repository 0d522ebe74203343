"""The plugin's trigger task."""

from __future__ import annotations

from triggerhooks import TaskContext, TriggerTask


class Greet(TriggerTask):
    """Greets every ``name`` found in the kwargs of the triggers it waited for."""

    name = "triggerhooks_example.greet"

    def _run(self, context: TaskContext) -> dict[str, str]:
        names = [kwargs["name"] for kwargs in context.trigger_kwargs.values()
                 if isinstance(kwargs, dict) and "name" in kwargs]
        if not names:
            raise ValueError("no trigger kwargs carry a 'name'")
        return {"greeting": f"Hello, {' and '.join(names)}!"}
