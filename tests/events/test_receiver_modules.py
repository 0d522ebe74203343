"""Receiver modules: imported once from TRIGGERHOOKS_RECEIVER_MODULES and from plugins."""

from __future__ import annotations

import importlib
import sys
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from triggerhooks import ReceiverModuleError, TriggerhooksError, TriggerManager
from triggerhooks.events.modules import RECEIVER_MODULES_ENV, _reset_receiver_modules, load_receiver_modules
from triggerhooks.plugins import hookimpl, registered
from triggerhooks.storages import StorageBackend

RECEIVERS = '''
from triggerhooks import on
from triggerhooks.signals import post_fire

calls = []

@on(post_fire)
def record(sender, trigger_name, **kwargs):
    calls.append(trigger_name)
'''


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Write receiver modules (unique names) to a directory on sys.path; forget them afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(RECEIVER_MODULES_ENV, raising=False)
    written: list[str] = []

    def write(source: str, name: str | None = None) -> str:
        name = name or f"receivers_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(source)
        importlib.invalidate_caches()
        written.append(name)
        return name

    _reset_receiver_modules()
    yield write
    _reset_receiver_modules()
    for name in written:
        sys.modules.pop(name, None)


def test_modules_from_the_environment_are_imported_once(
        module_dir: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
        make_storage: Callable[[], StorageBackend]) -> None:
    first, second = module_dir(RECEIVERS), module_dir(RECEIVERS)
    monkeypatch.setenv(RECEIVER_MODULES_ENV, f" {first} ,{second},, ")

    manager = TriggerManager(make_storage())
    assert first in sys.modules and second in sys.modules
    manager.fire("pageReceived")
    assert sys.modules[first].calls == ["pageReceived"]
    assert sys.modules[second].calls == ["pageReceived"]

    del sys.modules[first]
    TriggerManager(make_storage())  # loading happens once per process
    assert first not in sys.modules
    assert load_receiver_modules() == []


def test_a_failing_module_is_named_and_tried_again(
        module_dir: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
        make_storage: Callable[[], StorageBackend]) -> None:
    good = module_dir(RECEIVERS)
    broken = module_dir("raise RuntimeError('settings missing')\n")
    monkeypatch.setenv(RECEIVER_MODULES_ENV, f"{good},{broken}")

    with pytest.raises(ReceiverModuleError) as caught:
        TriggerManager(make_storage())
    message = str(caught.value)
    assert repr(broken) in message and RECEIVER_MODULES_ENV in message
    assert "RuntimeError: settings missing" in message
    assert isinstance(caught.value, TriggerhooksError) and isinstance(caught.value, ImportError)
    assert isinstance(caught.value.__cause__, RuntimeError)

    module_dir(RECEIVERS, broken)  # fixed: the next manager imports it
    manager = TriggerManager(make_storage())
    manager.fire("x")
    assert sys.modules[broken].calls == ["x"]
    assert sys.modules[good].calls == ["x"]  # imported once, so connected once


def test_a_missing_module_is_named(module_dir: Callable[[str], str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RECEIVER_MODULES_ENV, "no_such_receivers_module")
    with pytest.raises(ReceiverModuleError, match=r"'no_such_receivers_module'.*ModuleNotFoundError"):
        load_receiver_modules()


def test_plugins_name_receiver_modules(module_dir: Callable[[str], str],
                                       make_storage: Callable[[], StorageBackend]) -> None:
    name = module_dir(RECEIVERS)
    plugin = types.ModuleType("receiver_plugin")

    @hookimpl
    def triggerhooks_receiver_modules() -> list[str]:
        return [name]

    plugin.triggerhooks_receiver_modules = triggerhooks_receiver_modules  # type: ignore[attr-defined]
    with registered(plugin, name=f"receiver-plugin-{name}"):
        TriggerManager(make_storage()).fire("fromPlugin")
    assert sys.modules[name].calls == ["fromPlugin"]


def test_explicit_names_are_loaded_at_once(module_dir: Callable[[str], str]) -> None:
    name = module_dir(RECEIVERS)
    assert load_receiver_modules([name]) == [name]
    assert load_receiver_modules([name]) == []
