"""A background receiver call as a worker gets it (a broker message): only a receiver this
process registered is called; a message naming anything else is refused and logged, and the
module it names is never imported (its top-level code never runs)."""

from __future__ import annotations

import importlib
import logging
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from triggerhooks import RunnerError, TriggerhooksError, TriggerManager, UnknownReceiverError
from triggerhooks.events.background import BackgroundCall
from triggerhooks.events.modules import RECEIVER_MODULES_ENV, _reset_receiver_modules
from triggerhooks.sessions import open_session
from triggerhooks.storages import StorageBackend

# A module whose import has an effect anyone can see: it writes a file.
MODULE = '''
from pathlib import Path
Path({marker!r}).write_text("imported")

from triggerhooks import on
from triggerhooks.signals import post_fire

calls = []

def not_connected(sender, **kwargs):
    calls.append("not connected")

@on(post_fire, background={background})
def record(sender, trigger_name, **kwargs):
    calls.append(trigger_name)
'''


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[Callable[[bool], tuple[str, Path]]]:
    """Write a module (a fresh name, on sys.path) and return its name and its marker file."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(RECEIVER_MODULES_ENV, raising=False)
    written: list[str] = []

    def write(background: bool = True) -> tuple[str, Path]:
        name = f"hostile_{uuid.uuid4().hex[:10]}"
        marker = tmp_path / f"{name}.imported"
        (tmp_path / f"{name}.py").write_text(MODULE.format(marker=str(marker),
                                                           background=background))
        importlib.invalidate_caches()
        written.append(name)
        return name, marker

    _reset_receiver_modules()
    yield write
    _reset_receiver_modules()
    for name in written:
        sys.modules.pop(name, None)


def message(module: str, qualname: str, signal: str = "post_fire") -> dict[str, Any]:
    return {"signal": signal, "receiver": [module, qualname], "sender": None,
            "kwargs": {"session_uid": "s", "trigger_name": "a", "trigger_kwargs": {}},
            "kinds": {}}


def test_a_message_naming_an_unimported_module_imports_nothing(
        write_module: Callable[[bool], tuple[str, Path]], manager: TriggerManager,
        caplog: pytest.LogCaptureFixture) -> None:
    name, marker = write_module(True)
    with caplog.at_level(logging.WARNING, "triggerhooks.events.background"), \
            pytest.raises(UnknownReceiverError) as caught:
        BackgroundCall.from_json(message(name, "record")).run(manager)
    assert name not in sys.modules and not marker.exists()
    assert str(caught.value).startswith(
        f"{name}.record is not a background receiver of signal 'post_fire' in this process")
    assert "nothing was imported for it" in str(caught.value)
    assert isinstance(caught.value, LookupError)
    [record] = caplog.records
    assert record.levelno == logging.WARNING and f"{name}.record" in record.getMessage()


@pytest.mark.parametrize(("module", "qualname"), [
    ("os", "system"), ("subprocess", "run"), ("builtins", "exec"), ("", "x"),
    ("antigravity", "fly"), ("this", "s"),
])
def test_a_message_naming_any_function_is_refused(module: str, qualname: str,
                                                  manager: TriggerManager) -> None:
    loaded = set(sys.modules)
    with pytest.raises((UnknownReceiverError, RunnerError)):
        BackgroundCall.from_json(message(module, qualname)).run(manager)
    assert set(sys.modules) - loaded == set()


def test_a_receiver_of_an_imported_module_is_called_once_registered(
        write_module: Callable[[bool], tuple[str, Path]], manager: TriggerManager) -> None:
    name, marker = write_module(True)
    module = importlib.import_module(name)  # the application imported it: @on registered it
    assert marker.exists()
    BackgroundCall.from_json(message(name, "record")).run(manager)
    assert module.calls == ["a"]
    # The same module's functions that are not background receivers stay out of reach, and
    # a receiver is found for its own signal only.
    for qualname, signal in (("not_connected", "post_fire"), ("record", "task_completed")):
        with pytest.raises(UnknownReceiverError):
            BackgroundCall.from_json(message(name, qualname, signal)).run(manager)
    assert module.calls == ["a"]


def test_a_receiver_of_a_configured_module_is_imported_and_called(
        write_module: Callable[[bool], tuple[str, Path]], storage: StorageBackend,
        monkeypatch: pytest.MonkeyPatch) -> None:
    name, marker = write_module(True)
    monkeypatch.setenv(RECEIVER_MODULES_ENV, name)  # the worker's own settings name it
    BackgroundCall.from_json(message(name, "record")).run(TriggerManager(storage))
    assert marker.exists()
    assert sys.modules[name].calls == ["a"]


def test_a_blocking_receiver_is_not_a_background_one(
        write_module: Callable[[bool], tuple[str, Path]], manager: TriggerManager) -> None:
    name, _ = write_module(False)
    importlib.import_module(name)
    with pytest.raises(UnknownReceiverError):
        BackgroundCall.from_json(message(name, "record")).run(manager)
    assert sys.modules[name].calls == []


@pytest.mark.parametrize("document", [
    None, [], {"receiver": "os.system"}, {**message("m", "f"), "receiver": ["m"]},
    {**message("m", "f"), "signal": 3}, {**message("m", "f"), "sender": {"module": "os"}},
    {**message("m", "f"), "kwargs": []}, {**message("m", "f"), "kinds": {"x": "pickle"}},
    {**message("m", "f"), "kwargs": {"manager": 1}},
])
def test_a_malformed_message_is_refused(document: Any) -> None:
    with pytest.raises(RunnerError, match="malformed background receiver call"):
        BackgroundCall.from_json(document)


@pytest.mark.parametrize("reference", [
    None, {}, {"manager": "default"}, {"manager": "default", "storage": {}},
    {"manager": "default", "storage": {"backend": "sqlite"}},
    {"manager": "default", "storage": {"backend": "sqlite", "uid": "s", "path": 5}},
    {"manager": "default", "storage": {"backend": "memory", "uid": "s"}, "finalizeLogLevel": "x"},
    {"manager": "nope", "storage": {"backend": "memory", "uid": "s"}},
    {"manager": "default", "storage": {"backend": "redis", "uid": "s", "url": "redis://h/0",
                                       "ttl": "nan"}},
    {"manager": "default", "storage": {"backend": "memory", "uid": "s\udc80"}},
])
def test_a_malformed_session_reference_is_refused_as_ours(reference: Any) -> None:
    """The session a message names (the first thing a worker rebuilds)."""
    with pytest.raises(TriggerhooksError):
        open_session(reference)
