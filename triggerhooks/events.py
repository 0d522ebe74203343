"""Receivers for triggerhooks signals: ``@on``, ``filter_events`` and a robust ``send_event``.

Modelled on Caluma's events. A receiver's failure is logged with its dotted
name and never changes stored state; failures of receivers connected with
``raise_exception=True`` are collected and raised together, after every
receiver ran, as :class:`~triggerhooks.exceptions.SignalHandlingError`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import os
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from blinker import ANY, Signal
from blinker._utilities import make_id

from .exceptions import SignalHandlingError, TriggerhooksError

__all__ = [
    "ANY",
    "ReceiverModuleError",
    "connected",
    "filter_events",
    "load_receiver_modules",
    "on",
    "send_event",
]

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)

RECEIVER_MODULES_ENV = "TRIGGERHOOKS_RECEIVER_MODULES"

# (id(signal), receiver id) -> raise_exception
_raising: dict[tuple[int, Hashable], bool] = {}
_loaded_modules: set[str] = set()
_modules_lock = threading.Lock()
_modules_done = False


class ReceiverModuleError(TriggerhooksError, ImportError):
    """A configured receiver module could not be imported."""


def dotted_name(obj: Any) -> str:
    target = getattr(obj, "__wrapped__", obj)
    module = getattr(target, "__module__", None) or "?"
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}.{qualname}"


def _task_sender(sender: Any) -> Any:
    """Function tasks stand for their generated task class as a sender."""
    return getattr(sender, "__trigger_task__", sender)


def on(signal: Signal | Iterable[Signal], sender: Any = ANY,
       raise_exception: bool = False) -> Callable[[F], F]:
    """Connect the decorated function (strongly) to one signal or a list of signals.

    ``sender`` limits it to one sender (a task class, a manager class);
    ``raise_exception=True`` makes its failures raise from the call that sent
    the signal instead of being only logged.
    """
    signals = [signal] if isinstance(signal, Signal) else list(signal)
    if not signals:
        raise ValueError("@on needs at least one signal")
    sender = _task_sender(sender)

    def decorator(func: F) -> F:
        for each in signals:
            each.connect(func, sender=sender, weak=False)
            _raising[(id(each), make_id(func))] = raise_exception
        return func

    return decorator


def filter_events(predicate: Callable[..., Any]) -> Callable[[F], F]:
    """Call the receiver only when ``predicate`` is true.

    The predicate names the receiver arguments it needs (``sender`` included)
    as its parameters and gets them by name.
    """
    parameters = inspect.signature(predicate).parameters
    takes_all = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    names = tuple(name for name, p in parameters.items()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def receiver(sender: Any, **kwargs: Any) -> Any:
            if takes_all:
                chosen = {"sender": sender, **kwargs}
            else:
                chosen = {}
                for name in names:
                    if name == "sender":
                        chosen[name] = sender
                    elif name in kwargs:
                        chosen[name] = kwargs[name]
                    else:
                        raise TypeError(
                            f"filter_events predicate of {dotted_name(func)} asks for {name!r}, "
                            f"but the signal passes only: sender, {', '.join(kwargs)}")
            if predicate(**chosen):
                return func(sender, **kwargs)
            return None

        return receiver  # type: ignore[return-value]

    return decorator


def send_event(signal: Signal, sender: Any, **kwargs: Any) -> list[tuple[Callable[..., Any], Any]]:
    """Call every receiver of ``signal`` for ``sender``; never stops at a failure.

    Each failure is logged with the receiver's dotted name. If receivers
    connected with ``raise_exception=True`` failed, their exceptions are
    raised together as :class:`SignalHandlingError` after all receivers ran.
    """
    if not signal.receivers:
        return []
    results: list[tuple[Callable[..., Any], Any]] = []
    caught: list[BaseException] = []
    signal_id = id(signal)
    for receiver in signal.receivers_for(sender):
        try:
            results.append((receiver, receiver(sender, **kwargs)))
        except Exception as exc:
            name = getattr(signal, "name", repr(signal))
            if _raising.get((signal_id, make_id(receiver)), False):
                caught.append(exc)
                log.info("receiver %s of %s raised %r", dotted_name(receiver), name, exc)
            else:
                log.exception("receiver %s of signal %s failed: %s", dotted_name(receiver),
                              name, exc)
    if caught:
        raise SignalHandlingError(caught)
    return results


@contextmanager
def connected(receiver: Callable[..., Any], signal: Signal | Iterable[Signal],
              sender: Any = ANY, raise_exception: bool = False) -> Iterator[Callable[..., Any]]:
    """Connect ``receiver`` for the duration of a ``with`` block (handy in tests)."""
    signals = [signal] if isinstance(signal, Signal) else list(signal)
    on(signals, sender=sender, raise_exception=raise_exception)(receiver)
    try:
        yield receiver
    finally:
        for each in signals:
            each.disconnect(receiver, sender=_task_sender(sender))
            _raising.pop((id(each), make_id(receiver)), None)


def _configured_modules() -> list[str]:
    from .plugins import receiver_modules_from_plugins

    names = [name.strip() for name in os.environ.get(RECEIVER_MODULES_ENV, "").split(",")]
    return [name for name in names if name] + receiver_modules_from_plugins()


def load_receiver_modules(names: Iterable[str] | None = None) -> list[str]:
    """Import receiver modules once: the given ones, or those from the environment and plugins.

    Returns the modules imported by this call. A module that fails to import
    raises :class:`ReceiverModuleError` naming it (and is tried again next time).
    """
    global _modules_done
    if names is None and _modules_done:
        return []
    with _modules_lock:
        wanted = list(names) if names is not None else _configured_modules()
        imported: list[str] = []
        for name in wanted:
            if name in _loaded_modules:
                continue
            try:
                importlib.import_module(name)
            except Exception as exc:
                raise ReceiverModuleError(
                    f"cannot import receiver module {name!r}: {type(exc).__name__}: {exc}"
                ) from exc
            _loaded_modules.add(name)
            imported.append(name)
        if names is None:
            _modules_done = True
        return imported


def _reset_receiver_modules() -> None:
    """Forget which modules were loaded (tests that change the environment)."""
    global _modules_done
    with _modules_lock:
        _loaded_modules.clear()
        _modules_done = False

