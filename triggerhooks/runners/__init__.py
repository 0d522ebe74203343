"""Task runners and their registry (``task_runners``)."""

from __future__ import annotations

from ..registries import task_runners
from .base import TaskRunner
from .inline import InlineTaskRunner
from .threading import ThreadingTaskRunner

__all__ = ["InlineTaskRunner", "TaskRunner", "ThreadingTaskRunner", "task_runners"]
