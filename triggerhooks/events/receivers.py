"""Receivers for triggerhooks signals: ``@on``, ``filter_events`` and a robust ``send_event``.

Modelled on Caluma's events. A receiver's failure is logged with its dotted
name and never changes stored state; failures of receivers connected with
``raise_exception=True`` are collected and raised together, after every
receiver ran, as :class:`~triggerhooks.exceptions.SignalHandlingError`.
Receivers connected with ``background=True`` are not called by the sender:
each call becomes a JSON :class:`~triggerhooks.background.BackgroundCall`
handed to the task runner of the session's manager (a Celery worker, a thread, ...).
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
from dataclasses import dataclass
from typing import Any, TypeVar

from blinker import ANY, Signal
from blinker._utilities import make_id

from .exceptions import SignalHandlingError, TriggerhooksError
from .signals import namespace

__all__ = [
    "ANY",
    "BEFORE_CHANGE_SIGNALS",
    "RECEIVER_MODULES_ENV",
    "CapturedSignals",
    "ReceiverModuleError",
    "SentSignal",
    "capture_signals",
    "connected",
    "filter_events",
    "load_receiver_modules",
    "on",
    "send_event",
]

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)

RECEIVER_MODULES_ENV = "TRIGGERHOOKS_RECEIVER_MODULES"
"""Environment variable naming receiver modules to import, comma-separated."""

BEFORE_CHANGE_SIGNALS = frozenset({"pre_fire", "pre_replay", "pre_skip"})
"""Signals sent before a change is stored (a receiver may veto it): no background receivers."""

# (signal, receiver id) -> the receiver, for receivers connected with raise_exception=True
# (or background=True). Holding the receiver keeps its id from being reused meanwhile.
_raising: dict[tuple[Signal, Hashable], Callable[..., Any]] = {}
_background: dict[tuple[Signal, Hashable], Callable[..., Any]] = {}
_watched: set[int] = set()

_loaded_modules: set[str] = set()
_modules_lock = threading.Lock()
_modules_done = False


class ReceiverModuleError(TriggerhooksError, ImportError):
    """A configured receiver module could not be imported; the message names it and why."""


def dotted_name(obj: Any) -> str:
    """``module.qualname`` of a receiver (of the decorated function for wrapped ones)."""
    target = inspect.unwrap(obj) if callable(obj) else obj
    module = getattr(target, "__module__", None) or "?"
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}.{qualname}"


def _task_sender(sender: Any) -> Any:
    """A function task (``@trigger_task``) stands for its generated task class as a sender."""
    return getattr(sender, "__trigger_task__", sender)


def _as_signals(signal: Signal | Iterable[Signal]) -> list[Signal]:
    signals = [signal] if isinstance(signal, Signal) else list(signal)
    if not signals:
        raise ValueError("@on needs at least one signal")
    for each in signals:
        if not isinstance(each, Signal):
            raise TypeError(f"@on expects blinker signals, not {each!r}")
    return signals


def _forget_flag(signal: Signal, *, receiver: Callable[..., Any], **kwargs: Any) -> None:
    """Drop a receiver's flags once it is fully disconnected."""
    receiver_id = make_id(receiver)
    if receiver_id not in signal.receivers:
        _raising.pop((signal, receiver_id), None)
        _background.pop((signal, receiver_id), None)


def _set_flags(signal: Signal, receiver: Callable[..., Any], raise_exception: bool,
               background: bool) -> None:
    key = (signal, make_id(receiver))
    for flags, wanted in ((_raising, raise_exception), (_background, background)):
        if wanted:
            flags[key] = receiver
        else:
            flags.pop(key, None)
    if (raise_exception or background) and id(signal) not in _watched:
        _watched.add(id(signal))
        signal.receiver_disconnected.connect(_forget_flag, sender=signal, weak=False)


def _check_background(signals: list[Signal], raise_exception: bool) -> None:
    if raise_exception:
        raise ValueError("a background receiver cannot raise_exception: it runs after the "
                         "sending call has returned")
    for each in signals:
        name = getattr(each, "name", None)
        if name in BEFORE_CHANGE_SIGNALS:
            raise ValueError(
                f"{name} is sent before the change is stored (its receivers may veto it), so it "
                "cannot have background receivers; listen to the matching post_ signal")


def on(signal: Signal | Iterable[Signal], sender: Any = ANY, raise_exception: bool = False,
       background: bool = False) -> Callable[[F], F]:
    """Connect the decorated function (strongly) to one signal or a list of signals.

    ``sender`` limits it to one sender: a task class (or a function declared
    with ``@trigger_task``) for task signals, a manager class for session
    signals. ``raise_exception=True`` makes its failures raise
    :class:`SignalHandlingError` from the call that sent the signal instead of
    being only logged; the flag belongs to the (signal, receiver) pair, so
    connecting the same function again replaces it. The receiver is returned
    unchanged.

    ``background=True`` runs the receiver through the task runner of the
    session's manager instead of in the sending call: on a Celery worker, in a
    thread, or (inline runner) right after the blocking receivers. It must be
    a module-level function (found by its dotted name in another process) and
    gets JSON-serializable arguments (see :class:`~triggerhooks.background.BackgroundCall`).
    """
    signals = _as_signals(signal)
    sender = _task_sender(sender)
    if background:
        _check_background(signals, raise_exception)

    def decorator(func: F) -> F:
        if not callable(func):
            raise TypeError(f"@on decorates a callable, not {func!r}")
        if inspect.iscoroutinefunction(inspect.unwrap(func)):
            raise TypeError(f"{dotted_name(func)} is a coroutine function; signal receivers "
                            "are called synchronously")
        if background and "<locals>" in getattr(inspect.unwrap(func), "__qualname__", "<locals>"):
            raise ValueError(
                f"background receiver {dotted_name(func)} must be a module-level function: "
                "a worker finds it by its dotted name")
        for each in signals:
            each.connect(func, sender=sender, weak=False)
            _set_flags(each, func, raise_exception, background)
        return func

    return decorator


def filter_events(predicate: Callable[..., Any]) -> Callable[[F], F]:
    """Call the receiver only when ``predicate`` returns a true value.

    The predicate declares the receiver arguments it needs (``sender``
    included) as parameters and gets them by name; a parameter with a default
    may be absent from a signal, one without must be present. Put it below
    ``@on``, so that ``@on`` connects the filtered receiver.
    """
    wants_all = False
    wanted: list[tuple[str, bool]] = []
    for name, parameter in inspect.signature(predicate).parameters.items():
        if parameter.kind is parameter.VAR_KEYWORD:
            wants_all = True
        elif parameter.kind is parameter.POSITIONAL_ONLY:
            raise TypeError(f"filter_events predicate {dotted_name(predicate)}: parameter "
                            f"{name!r} is positional-only, but receiver arguments are passed "
                            "by name")
        elif parameter.kind is not parameter.VAR_POSITIONAL:
            wanted.append((name, parameter.default is parameter.empty))

    def select(sender: Any, kwargs: dict[str, Any], func: Callable[..., Any]) -> dict[str, Any]:
        if wants_all:
            return {"sender": sender, **kwargs}
        chosen = {}
        for name, required in wanted:
            if name == "sender":
                chosen[name] = sender
            elif name in kwargs:
                chosen[name] = kwargs[name]
            elif required:
                raise TypeError(
                    f"filter_events predicate of {dotted_name(func)} asks for {name!r}, "
                    f"but the signal passes only: sender, {', '.join(kwargs)}")
        return chosen

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def receiver(sender: Any, /, **kwargs: Any) -> Any:
            if predicate(**select(sender, kwargs, func)):
                return func(sender, **kwargs)
            return None

        # A background receiver is filtered where the signal is sent, then runs unfiltered.
        receiver.__th_accepts__ = (  # type: ignore[attr-defined]
            lambda sender, kwargs: bool(predicate(**select(sender, kwargs, func))))
        receiver.__th_unfiltered__ = func  # type: ignore[attr-defined]
        return receiver  # type: ignore[return-value]

    return decorator


def send_event(signal: Signal, sender: Any = None, /,
               **kwargs: Any) -> list[tuple[Callable[..., Any], Any]]:
    """Call every receiver of ``signal`` for ``sender``; a failure never stops the others.

    Returns ``(receiver, return value)`` pairs, with the exception as the value
    of a receiver that failed. Each failure is logged (ERROR, with traceback)
    under the receiver's dotted name. If receivers connected with
    ``raise_exception=True`` failed, their exceptions are raised together as
    :class:`SignalHandlingError` after every receiver ran.
    """
    if not signal.receivers or signal.is_muted:
        return []
    results: list[tuple[Callable[..., Any], Any]] = []
    caught: list[Exception] = []
    deferred: list[Callable[..., Any]] = []
    for receiver in signal.receivers_for(sender):
        if _background and (signal, make_id(receiver)) in _background:
            deferred.append(receiver)
            continue
        try:
            results.append((receiver, receiver(sender, **kwargs)))
        except Exception as exc:
            results.append((receiver, exc))
            raising = (signal, make_id(receiver)) in _raising
            if raising:
                caught.append(exc)
            _log_failure(signal, receiver, exc, raising)
    for receiver in deferred:
        from .background import hand_off

        try:
            hand_off(signal, receiver, sender, kwargs)
            results.append((receiver, None))
        except Exception as exc:
            results.append((receiver, exc))
            _log_failure(signal, receiver, exc, False)
    if caught:
        raise SignalHandlingError(caught)
    return results


def _log_failure(signal: Signal, receiver: Callable[..., Any], exc: Exception,
                 raising: bool) -> None:
    log.error("receiver %s of signal %s failed%s: %s: %s", dotted_name(receiver),
              getattr(signal, "name", repr(signal)),
              " (raise_exception: raised once all receivers ran)" if raising else "",
              type(exc).__name__, exc, exc_info=exc)


@contextmanager
def connected(receiver: F, signal: Signal | Iterable[Signal], sender: Any = ANY,
              raise_exception: bool = False, background: bool = False) -> Iterator[F]:
    """Connect ``receiver`` like ``@on`` for the duration of a ``with`` block (handy in tests).

    On exit the receiver is disconnected from the signals (for every sender).
    """
    signals = _as_signals(signal)
    on(signals, sender=sender, raise_exception=raise_exception, background=background)(receiver)
    try:
        yield receiver
    finally:
        for each in signals:
            each.disconnect(receiver)
            _raising.pop((each, make_id(receiver)), None)
            _background.pop((each, make_id(receiver)), None)


@dataclass(frozen=True, slots=True)
class SentSignal:
    """One signal as a receiver saw it: its name, sender and keyword arguments."""

    name: str
    sender: Any
    kwargs: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.kwargs[key]


class CapturedSignals(list[SentSignal]):
    """The signals sent during a :func:`capture_signals` block, in the order they were sent."""

    @property
    def names(self) -> list[str]:
        return [sent.name for sent in self]

    def of(self, signal: Signal | str) -> list[SentSignal]:
        """The captured sends of one signal (or signal name)."""
        name = signal if isinstance(signal, str) else getattr(signal, "name", None)
        return [sent for sent in self if sent.name == name]


@contextmanager
def capture_signals(*signals: Signal, sender: Any = ANY) -> Iterator[CapturedSignals]:
    """Record the given signals (default: every triggerhooks signal) sent during a block.

    ``with capture_signals() as sent: ...`` then ``sent.names`` lists them in
    order; each entry has ``name``, ``sender`` and ``kwargs``.
    """
    chosen = list(signals) or list(namespace.values())
    captured = CapturedSignals()
    recorders: list[tuple[Signal, Callable[..., None]]] = []

    def recorder(name: str) -> Callable[..., None]:
        def record(sent_by: Any, /, **kwargs: Any) -> None:
            captured.append(SentSignal(name, sent_by, kwargs))
        return record

    sender = _task_sender(sender)
    try:
        for each in chosen:
            record = recorder(getattr(each, "name", repr(each)))
            each.connect(record, sender=sender, weak=False)
            recorders.append((each, record))
        yield captured
    finally:
        for each, record in recorders:
            each.disconnect(record)


# -- receiver modules ----------------------------------------------------------------------


def _configured_modules() -> list[tuple[str, str]]:
    from .plugins import receiver_modules_from_plugins

    names = [(name.strip(), RECEIVER_MODULES_ENV)
             for name in os.environ.get(RECEIVER_MODULES_ENV, "").split(",")]
    return ([(name, source) for name, source in names if name]
            + [(name, "a plugin") for name in receiver_modules_from_plugins()])


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
