"""The flat public namespace: ``triggerhooks.__all__`` is exactly what the package exports."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import triggerhooks


def test_every_name_in_all_exists_once() -> None:
    assert len(triggerhooks.__all__) == len(set(triggerhooks.__all__))
    assert [name for name in triggerhooks.__all__ if not hasattr(triggerhooks, name)] == []


def test_every_public_name_is_in_all() -> None:
    public = {name for name, value in vars(triggerhooks).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    public.discard("annotations")  # ``from __future__ import annotations``
    assert public == set(triggerhooks.__all__) - {"__version__"}


def _public_modules() -> list[types.ModuleType]:
    return [importlib.import_module(info.name)
            for info in pkgutil.walk_packages(triggerhooks.__path__, "triggerhooks.")
            if not info.name.rpartition(".")[2].startswith("_")]


def test_top_level_names_are_the_public_names_of_their_modules() -> None:
    """Each export is the object its own module lists in its ``__all__`` (no private helper)."""
    homes = {name: module for module in _public_modules() for name in getattr(module, "__all__", ())}
    for name in set(triggerhooks.__all__) - {"__version__"}:
        assert name in homes, f"{name} is in no module's __all__"
        assert getattr(homes[name], name) is getattr(triggerhooks, name), name


TOOLBOX = ("triggerhooks.cli", "triggerhooks.demo", "triggerhooks.graph", "triggerhooks.testing",
           "triggerhooks.workflow")
"""The command line and its helpers keep their names (and errors) in their own modules."""


def test_every_error_of_the_core_is_exported() -> None:
    errors = {name for module in _public_modules() if not module.__name__.startswith(TOOLBOX)
              for name in getattr(module, "__all__", ())
              if isinstance(value := getattr(module, name), type)
              and issubclass(value, Exception) and value.__module__.startswith("triggerhooks")}
    assert {"SessionReferenceError", "RunnerError", "UnknownKeyError"} <= errors
    assert errors - set(triggerhooks.__all__) == set()


@pytest.mark.parametrize(("module", "names"), [
    # every import the contract shows
    ("triggerhooks", ["TriggerManager", "MemoryStorageBackend", "on", "filter_events"]),
    ("triggerhooks.manager", ["trigger_managers"]),
    ("triggerhooks.storages", ["storage_backends"]),
    ("triggerhooks.runners", ["task_runners"]),
    ("triggerhooks.task", ["trigger_tasks", "TriggerTask", "TaskContext"]),
    ("triggerhooks.exceptions", ["with_context"]),
    ("triggerhooks.signals", ["pre_fire", "post_fire", "task_scheduled", "task_completed",
                              "task_failed", "instance_abandoned", "pre_replay", "post_replay",
                              "pre_skip", "post_skip", "session_finalized"]),
    ("triggerhooks.plugins", ["hookimpl"]),
    # and the names it uses without an import
    ("triggerhooks", ["TaskConfig", "TaskInstance", "StatusChange", "MaxRetriesExceeded",
                      "SignalHandlingError", "TriggerhooksError", "ThreadingTaskRunner",
                      "SqliteStorageBackend", "RedisStorageBackend"]),
])
def test_the_imports_of_the_contract(module: str, names: list[str]) -> None:
    imported = importlib.import_module(module)
    assert [name for name in names if name not in getattr(imported, "__all__", ())] == []
