"""Task runners and their registry (``task_runners``)."""

from __future__ import annotations

from ..registry import Registry
from .base import TaskRunner
from .inline import InlineTaskRunner
from .threading import ThreadingTaskRunner

__all__ = ["InlineTaskRunner", "TaskRunner", "ThreadingTaskRunner", "task_runners"]

task_runners: Registry[TaskRunner] = Registry("task runner", attr_name="name")
"""Task runner classes by key (built-in: ``inline``, ``threading``)."""
