"""A plugin whose registration hook registers a runner, then raises."""

from __future__ import annotations

from typing import Any

from triggerhooks import InlineTaskRunner
from triggerhooks.ext import hookimpl


class HalfRegisteredRunner(InlineTaskRunner):
    name = "half-registered"


@hookimpl
def triggerhooks_register_runners(registry: Any) -> None:
    registry.register(HalfRegisteredRunner)
    raise ImportError("the optional dependency 'nothere' is not installed")
