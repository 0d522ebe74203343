"""The hook implementation the ``triggerhooks`` entry point names (imports no Celery)."""

from __future__ import annotations

from triggerhooks.ext import Registry, TaskRunner, hookimpl

from .runner import CeleryTaskRunner


@hookimpl
def triggerhooks_register_runners(registry: Registry[TaskRunner]) -> None:
    registry.register("celery")(CeleryTaskRunner)
