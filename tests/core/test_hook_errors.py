"""A subclass's hook that raises (``_post_fire``, ``_post_replay``, ``_post_skip``): its error
reaches the caller, marked committed, but only once everything the change scheduled was
handed off, so no instance is left ``scheduled`` after the call returned."""

from __future__ import annotations

import pytest

from tests.helpers import settle
from triggerhooks import TaskInstance, TriggerManager
from triggerhooks.storages import StorageBackend


class _HookBug(RuntimeError):
    """What the hooks below raise."""


class RaisingHooks(TriggerManager):
    """Every hook raises, as a subclass with a bug in it would."""

    def _post_fire(self, trigger_name: str, tasks_scheduled: list[TaskInstance]) -> None:
        raise _HookBug(f"_post_fire({trigger_name})")

    def _post_replay(self, task_instance: TaskInstance) -> None:
        raise _HookBug("_post_replay")

    def _post_skip(self, task_instance: TaskInstance, cascade: bool) -> None:
        raise _HookBug("_post_skip")


@pytest.fixture
def manager(storage: StorageBackend, runner_name: str) -> RaisingHooks:
    """A session where ``ok`` runs after ``go`` and ``down`` after ``ok``; ``bad`` always
    fails and ``after_bad`` waits for it."""
    manager = RaisingHooks(storage, task_runner=runner_name)
    manager.update_configuration({
        "ok": {"after": ["go"], "run": "tests.echo"},
        "down": {"after": ["ok"], "run": "tests.echo"},
        "bad": {"andEvery": "try", "run": "tests.boom"},
        "after_bad": {"after": ["bad"], "run": "tests.echo"},
    })
    return manager


def _statuses(manager: TriggerManager) -> dict[str, str]:
    return {instance.name: instance.status.value for instance in manager.storage}


def test_a_raising_post_fire_hook_still_hands_off_what_the_fire_scheduled(
        manager: RaisingHooks) -> None:
    with pytest.raises(_HookBug, match=r"_post_fire\(go\)") as raised:
        manager.fire("go", {"n": 1})
    settle()
    assert raised.value.committed is True  # type: ignore[attr-defined]
    assert raised.value.scheduled == ("ok#0",)  # type: ignore[attr-defined]
    assert _statuses(manager) == {"ok#0": "finished", "down#0": "finished"}


def test_a_raising_post_replay_hook_still_hands_off_the_copy(manager: RaisingHooks) -> None:
    with pytest.raises(_HookBug):
        manager.fire("try")
    settle()
    with pytest.raises(_HookBug, match="_post_replay") as raised:
        manager.replay_failed_instance("bad#0")
    settle()
    assert raised.value.committed is True  # type: ignore[attr-defined]
    assert _statuses(manager) == {"bad#0": "replayed", "bad#1": "failed"}


def test_a_raising_post_skip_hook_still_hands_off_what_the_cascade_scheduled(
        manager: RaisingHooks) -> None:
    with pytest.raises(_HookBug):
        manager.fire("try")
    settle()
    with pytest.raises(_HookBug, match=r"_post_fire\(bad\)"):
        manager.skip_failed_instance("bad#0", cascade=True)
    settle()
    assert _statuses(manager) == {"bad#0": "skipped", "after_bad#0": "finished"}
