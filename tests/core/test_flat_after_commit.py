"""What follows a commit reads only what the commit concerns: never every task's
configuration, state or kwargs, so its cost does not grow with the session."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from triggerhooks import MemoryStorageBackend, TriggerManager, TriggerTask, connected
from triggerhooks.core.types import TaskState
from triggerhooks.models import TaskConfig, TaskInstance
from triggerhooks.serialization import JsonDict
from triggerhooks.signals import namespace
from triggerhooks.storages import MemoryStore
from triggerhooks.task import TaskContext


class Warns(TriggerTask):
    """Finishes after logging a warning: its logs stay unresolved."""

    name = "tests.flat.warns"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        with context.get_logger_context() as logger:
            logger.warning("look at this")
        return {}


class CountingStorage(MemoryStorageBackend):
    """Counts the reads that load a whole session."""

    def __init__(self, uid: str) -> None:
        super().__init__(uid, store=MemoryStore())
        self.whole: list[str] = []

    def _load_tasks(self) -> dict[str, TaskConfig]:
        self.whole.append("tasks")
        return super()._load_tasks()

    def _load_states(self) -> dict[str, TaskState]:
        self.whole.append("states")
        return super()._load_states()

    def _load_kwargs(self) -> dict[str, JsonDict]:
        self.whole.append("kwargs")
        return super()._load_kwargs()

    def _load_instances(self, names: Sequence[str] | None = None) -> dict[str, TaskInstance]:
        if names is None:
            self.whole.append("instances")
        return super()._load_instances(names)


@pytest.fixture
def storage() -> CountingStorage:
    return CountingStorage("flat")


@pytest.fixture
def every_signal_heard() -> Iterator[list[str]]:
    """A receiver on every signal, so every branch that serves receivers runs."""
    heard: list[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        heard.append(kwargs.get("trigger_name") or "")

    with connected(receiver, list(namespace.values())):
        yield heard


def test_fires_with_receivers_read_no_whole_session(storage: CountingStorage,
                                                     every_signal_heard: list[str]) -> None:
    manager = TriggerManager(storage)
    manager.update_configuration({
        "t_a": {"after": ["a"], "run": "tests.noop"},
        "t_b": {"after": ["t_a", "b"], "run": "tests.boom"},
        **{f"other{i}": {"after": [f"x{i}"], "run": "tests.noop"} for i in range(20)},
    })
    storage.whole.clear()
    manager.fire("a")
    manager.fire("b")  # t_b fails
    manager.fire("unrelated")
    manager.replay_failed_instance("t_b#0")
    manager.skip_failed_instance("t_b#1", cascade=True)
    assert "unrelated" in every_signal_heard
    assert storage.whole == []


def test_a_session_held_back_by_its_logs_costs_a_fire_nothing(storage: CountingStorage) -> None:
    manager = TriggerManager(storage, finalize_log_level=logging.WARNING)
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.flat.warns"}})
    manager.fire("a")
    assert not storage.is_finalized  # every task resolved, but a warning is not
    storage.whole.clear()
    manager.fire("unrelated")
    assert storage.whole == []
    manager.mark_instance_logs_resolved("t#0")
    assert storage.is_finalized
