"""Every signal triggerhooks sends, in one blinker namespace.

Session-level signals are sent by the manager class (``type(manager)``);
task-level ones by the task class, so ``@on(task_completed, sender=MyTask)``
picks one task. Every signal passes ``manager`` and ``session_uid``.
Receivers should accept ``**kwargs``: payloads may grow. The receivers of one
signal run in connection order, those connected for any sender first.
See ``docs/events.md`` for who sends what, and in which order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableSet
from typing import Any

from blinker import NamedSignal, Namespace

__all__ = [
    "configuration_updated",
    "instance_abandoned",
    "namespace",
    "post_fire",
    "post_replay",
    "post_skip",
    "pre_fire",
    "pre_replay",
    "pre_skip",
    "session_finalized",
    "task_completed",
    "task_failed",
    "task_scheduled",
    "task_started",
]


class _OrderedSet(MutableSet[Any]):
    """Keeps receivers in connection order (blinker's default ``set`` does not)."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._items = dict.fromkeys(items)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, value: Any) -> None:
        self._items[value] = None

    def discard(self, value: Any) -> None:
        self._items.pop(value, None)

    def copy(self) -> _OrderedSet:
        return _OrderedSet(self._items)


class _Signal(NamedSignal):
    set_class = _OrderedSet  # type: ignore[assignment]


class _Namespace(Namespace):
    def signal(self, name: str, doc: str | None = None) -> NamedSignal:
        if name not in self:
            self[name] = _Signal(name, doc)
        return self[name]


namespace = _Namespace()

# fmt: off
pre_fire = namespace.signal("pre_fire", doc="Before a trigger (or a cascade) is recorded; sender: manager class; trigger_name, trigger_kwargs. A raise_exception receiver that raises vetoes the fire.")  # noqa: E501
post_fire = namespace.signal("post_fire", doc="After a firing is stored; sender: manager class; trigger_name, trigger_kwargs, tasks_scheduled (instances it scheduled).")  # noqa: E501
task_scheduled = namespace.signal("task_scheduled", doc="An instance was stored as scheduled, before it is handed to its runner; sender: task class; task_instance.")  # noqa: E501
task_started = namespace.signal("task_started", doc="A runner claimed an instance (now running), before its task runs; sender: task class; task_instance.")  # noqa: E501
task_completed = namespace.signal("task_completed", doc="An instance finished; sender: task class; task_instance, result (its cascade kwargs).")  # noqa: E501
task_failed = namespace.signal("task_failed", doc="An instance failed; sender: task class; task_instance, exception (None when set by hand).")  # noqa: E501
instance_abandoned = namespace.signal("instance_abandoned", doc="An unstarted instance was abandoned (its unless triggers fired); sender: task class; task_instance.")  # noqa: E501
pre_replay = namespace.signal("pre_replay", doc="Before replay_failed_instance replays a failed instance; sender: task class; task_instance. A raise_exception receiver that raises vetoes it.")  # noqa: E501
post_replay = namespace.signal("post_replay", doc="After a replay copy is stored (manual replay or retry); sender: task class; task_instance (the copy), parent (the failed instance's name).")  # noqa: E501
pre_skip = namespace.signal("pre_skip", doc="Before a failed instance is skipped; sender: task class; task_instance, cascade. A raise_exception receiver that raises vetoes it.")  # noqa: E501
post_skip = namespace.signal("post_skip", doc="After a skip (and its cascade) is stored; sender: task class; task_instance, cascade.")  # noqa: E501
session_finalized = namespace.signal("session_finalized", doc="Once per session, after the sessionFinalized trigger is stored; sender: manager class.")  # noqa: E501
configuration_updated = namespace.signal("configuration_updated", doc="After update_configuration stored a configuration; sender: manager class; tasks (name -> TaskConfig of the tasks given).")  # noqa: E501
# fmt: on
