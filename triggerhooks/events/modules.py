"""Receiver modules: modules that connect receivers when imported, loaded once per process.

The first ``TriggerManager`` imports the modules named by
``TRIGGERHOOKS_RECEIVER_MODULES`` and those plugins ask for. The plugin system
hands its list in through :func:`use_plugin_modules` (this module never
imports it).
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Iterable

from ..exceptions import TriggerhooksError

__all__ = [
    "RECEIVER_MODULES_ENV",
    "ReceiverModuleError",
    "load_receiver_modules",
    "use_plugin_modules",
]

RECEIVER_MODULES_ENV = "TRIGGERHOOKS_RECEIVER_MODULES"
"""Environment variable naming receiver modules to import, comma-separated."""

_loaded_modules: set[str] = set()
_modules_lock = threading.Lock()
_modules_done = False


def _no_plugins() -> list[str]:
    return []


_plugin_modules: Callable[[], list[str]] = _no_plugins


class ReceiverModuleError(TriggerhooksError, ImportError):
    """A configured receiver module could not be imported; the message names it and why."""

    __module__ = "triggerhooks.events"  # its public home, as tracebacks and the docs name it


def use_plugin_modules(source: Callable[[], list[str]]) -> None:
    """Ask ``source`` for the receiver modules of plugins (the plugin system sets this once)."""
    global _plugin_modules
    _plugin_modules = source


def _configured_modules() -> list[tuple[str, str]]:
    names = [(name.strip(), RECEIVER_MODULES_ENV)
             for name in os.environ.get(RECEIVER_MODULES_ENV, "").split(",")]
    return ([(name, source) for name, source in names if name]
            + [(name, "a plugin") for name in _plugin_modules()])


def load_receiver_modules(names: Iterable[str] | None = None) -> list[str]:
    """Import receiver modules once each: the given ones, or those configured.

    Without ``names``, imports the modules named by
    ``TRIGGERHOOKS_RECEIVER_MODULES`` and by plugins (the first
    ``TriggerManager`` does this; later calls return at once). Returns the
    modules this call imported. A module that fails to import raises
    :class:`ReceiverModuleError` naming it; it is tried again on the next call.
    """
    global _modules_done
    if names is None and _modules_done:
        return []
    with _modules_lock:
        if names is None and _modules_done:
            return []
        wanted = ([(name, "the caller") for name in names] if names is not None
                  else _configured_modules())
        imported: list[str] = []
        for name, source in wanted:
            if name in _loaded_modules:
                continue
            try:
                importlib.import_module(name)
            except Exception as exc:
                raise ReceiverModuleError(
                    f"cannot import receiver module {name!r} (named by {source}): "
                    f"{type(exc).__name__}: {exc}") from exc
            _loaded_modules.add(name)
            imported.append(name)
        if names is None:
            _modules_done = True
        return imported


def _reset_receiver_modules() -> None:
    """Forget which modules were loaded (for tests that change the environment)."""
    global _modules_done
    with _modules_lock:
        _loaded_modules.clear()
        _modules_done = False
