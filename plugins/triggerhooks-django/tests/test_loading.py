"""Tasks and receivers load with Django: every app's ``triggers``/``receivers`` module and
the modules ``TRIGGERHOOKS['receiver_modules']`` names."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import testapp.receivers
import testproject.receivers
from django.core.exceptions import ImproperlyConfigured
from triggerhooks_django.loading import import_app_modules, import_modules, loaded_modules

from triggerhooks import TriggerManager, trigger_tasks


def test_the_apps_modules_and_the_configured_ones_are_loaded_at_start_up() -> None:
    assert loaded_modules() == ["testapp.triggers", "testapp.receivers", "testproject.receivers"]
    assert "testapp.echo" in trigger_tasks and "testapp.flaky" in trigger_tasks


def test_the_loaded_receivers_receive(manager: TriggerManager, uid: str) -> None:
    manager.update_configuration({"t": {"after": ["go"], "run": "testapp.echo"}})
    manager.fire("go", {"n": 1})
    assert (uid, "go") in testapp.receivers.FIRED  # the app's receivers module
    assert uid in testproject.receivers.FINALIZED  # the configured receiver module


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A package ``thapp_<n>`` on sys.path, as an app: write its modules, then use it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def make(name: str, **modules: str) -> SimpleNamespace:
        root = tmp_path / name
        root.mkdir()
        (root / "__init__.py").write_text("")
        for module, source in modules.items():
            (root / f"{module}.py").write_text(source)
        names.append(name)
        return SimpleNamespace(name=name, module=__import__(name))

    yield make
    for name in list(sys.modules):
        if name.split(".")[0] in names:
            del sys.modules[name]


def test_an_app_without_the_modules_is_skipped(package: Any) -> None:
    app = package("thapp_plain")
    assert import_app_modules([app], ["triggers", "receivers"]) == []


def test_an_error_inside_an_apps_module_is_not_hidden(package: Any) -> None:
    app = package("thapp_broken", receivers="import thapp_no_such_dependency\n")
    with pytest.raises(ModuleNotFoundError, match="thapp_no_such_dependency"):
        import_app_modules([app], ["triggers", "receivers"])
    app = package("thapp_failing", triggers="raise RuntimeError('boom at import')\n")
    with pytest.raises(RuntimeError, match="boom at import"):
        import_app_modules([app], ["triggers"])


def test_other_module_names_are_looked_for(package: Any) -> None:
    app = package("thapp_events", events="LOADED = True\n")
    assert import_app_modules([app], ["events"]) == ["thapp_events.events"]
    assert sys.modules["thapp_events.events"].LOADED


def test_a_configured_module_that_cannot_be_imported_is_named() -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        import_modules(["testproject.receivers", "testproject.nope"])
    assert str(caught.value) == (
        "TRIGGERHOOKS['receiver_modules'] names 'testproject.nope', which cannot be imported: "
        "ModuleNotFoundError: No module named 'testproject.nope'")
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)
