"""A task runner that holds instances, so a test decides when, where and how they run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from ..runners import TaskRunner, task_runners
from .registries import registered_class

if TYPE_CHECKING:
    from ..manager import TriggerManager
    from ..models import TaskInstance

__all__ = ["HeldInstance", "HoldingRunner", "holding_runner"]


class HeldInstance(NamedTuple):
    """One hand-off the runner received: what ``schedule`` was called with."""

    manager: TriggerManager
    name: str
    countdown: float


class HoldingRunner(TaskRunner):
    """Runs nothing by itself: every instance handed to it stays ``scheduled`` until the
    test calls :meth:`release` (or executes it another way, e.g. as a worker would).

    Use it through :func:`holding_runner`, which registers a subclass with a
    :attr:`held` list of its own for the length of a block.
    """

    name: ClassVar[str] = "held"
    held: ClassVar[list[HeldInstance]] = []
    """The hand-offs not released yet, oldest first."""

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        type(self).held.append(HeldInstance(manager, instance_name, countdown))

    @classmethod
    def names(cls) -> list[str]:
        """The names of the held instances, oldest first."""
        return [held.name for held in cls.held]

    @classmethod
    def drop(cls) -> list[str]:
        """Forget the held instances without running them, as a hand-off lost with its
        process or message; they stay ``scheduled`` until a recovery. Returns their names."""
        names = cls.names()
        cls.held.clear()
        return names

    @classmethod
    def release(cls) -> list[TaskInstance | None]:
        """Execute every held instance, and those their cascades hand to this runner,
        oldest first; returns what each ``manager.execute()`` returned."""
        done: list[TaskInstance | None] = []
        while cls.held:
            held = cls.held.pop(0)
            done.append(held.manager.execute(held.name))
        return done


@contextmanager
def holding_runner(key: str = "held") -> Iterator[type[HoldingRunner]]:
    """Register a :class:`HoldingRunner` as the task runner ``key`` while the block runs:
    tasks ``using`` it (or managers made with ``task_runner=key``) stay ``scheduled``."""

    class Holding(HoldingRunner):
        name: ClassVar[str] = key
        held: ClassVar[list[HeldInstance]] = []

    with registered_class(task_runners, key, Holding):
        yield Holding
