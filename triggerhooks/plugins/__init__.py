"""The plugin system (pluggy): the hook marker, in-process registration and what is installed.

Plugins extend triggerhooks through the hooks of :mod:`triggerhooks.plugins.hookspecs`;
the built-ins (:mod:`triggerhooks.plugins.builtins`) register through the very
same hooks. :mod:`triggerhooks.plugins.loading` discovers, loads and isolates
them: nothing is loaded at import time, the first registry lookup loads every
plugin once.

An installed plugin that cannot be loaded (import error, unknown hook, a hook
that raises) is left out: reported once, by a
:class:`~triggerhooks.exceptions.PluginLoadWarning` (its traceback is logged at
DEBUG), listed by
:func:`failed_plugins` and named when a registry lookup misses. Two plugins
registering one key is not one plugin's fault: every lookup raises
:class:`~triggerhooks.exceptions.DuplicateKeyError` naming both until one goes.
"""

from __future__ import annotations

from .hookspecs import ENTRY_POINT_GROUP, hookimpl
from .loading import (
    BUILTINS,
    PluginInfo,
    failed_plugins,
    get_plugin_manager,
    list_plugins,
    load_registrations,
    receiver_modules_from_plugins,
    register,
    registered,
    unregister,
)

__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "failed_plugins",
    "get_plugin_manager",
    "hookimpl",
    "list_plugins",
    "load_registrations",
    "receiver_modules_from_plugins",
    "register",
    "registered",
    "unregister",
]
