"""Connecting receivers: ``@on`` and ``filter_events``.

``@on`` connects a function strongly to one or more signals and records, per
(signal, receiver) pair, whether its failures raise (``raise_exception=True``)
and whether it runs in the background (``background=True``). The send loop
(:mod:`triggerhooks.events.dispatch`) reads those flags.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Hashable, Iterable
from typing import Any, TypeVar

from blinker import ANY, Signal
from blinker._utilities import make_id

from ..serialization import dotted_name

__all__ = [
    "ANY",
    "BEFORE_CHANGE_SIGNALS",
    "as_sender",
    "as_signals",
    "disconnect",
    "filter_events",
    "on",
]

F = TypeVar("F", bound=Callable[..., Any])

BEFORE_CHANGE_SIGNALS = frozenset({"pre_fire", "pre_replay", "pre_skip"})
"""Signals sent before a change is stored (a receiver may veto it): no background receivers."""

FlagKey = tuple[Signal, Hashable]

raising_receivers: dict[FlagKey, Callable[..., Any]] = {}
"""(signal, receiver id) -> the receiver, for receivers connected with ``raise_exception=True``.
Holding the receiver keeps its id from being reused meanwhile."""

background_receivers: dict[FlagKey, Callable[..., Any]] = {}
"""(signal, receiver id) -> the receiver, for receivers connected with ``background=True``."""

_watched: set[int] = set()


def as_sender(sender: Any) -> Any:
    """A function task (``@trigger_task``) stands for its generated task class as a sender."""
    return getattr(sender, "__trigger_task__", sender)


def as_signals(signal: Signal | Iterable[Signal]) -> list[Signal]:
    """One signal or several as a list, refusing anything that is not a blinker signal."""
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
        raising_receivers.pop((signal, receiver_id), None)
        background_receivers.pop((signal, receiver_id), None)


def _set_flags(signal: Signal, receiver: Callable[..., Any], raise_exception: bool,
               background: bool) -> None:
    key = (signal, make_id(receiver))
    for flags, wanted in ((raising_receivers, raise_exception), (background_receivers, background)):
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


def _check_receiver(func: Callable[..., Any], background: bool) -> None:
    if not callable(func):
        raise TypeError(f"@on decorates a callable, not {func!r}")
    if inspect.iscoroutinefunction(inspect.unwrap(func)):
        raise TypeError(f"{dotted_name(func)} is a coroutine function; signal receivers "
                        "are called synchronously")
    if background and "<locals>" in getattr(inspect.unwrap(func), "__qualname__", "<locals>"):
        raise ValueError(
            f"background receiver {dotted_name(func)} must be a module-level function: "
            "a worker finds it by its dotted name")


def on(signal: Signal | Iterable[Signal], sender: Any = ANY, raise_exception: bool = False,
       background: bool = False) -> Callable[[F], F]:
    """Connect the decorated function (strongly) to one signal or a list of signals.

    ``sender`` limits it to one sender: a task class (or a function declared
    with ``@trigger_task``) for task signals, a manager class for session
    signals. ``raise_exception=True`` makes its failures raise
    :class:`~triggerhooks.exceptions.SignalHandlingError` from the call that
    sent the signal instead of being only logged; the flag belongs to the
    (signal, receiver) pair, so connecting the same function again replaces
    it. The receiver is returned unchanged.

    ``background=True`` runs the receiver through the task runner of the
    session's manager instead of in the sending call: on a Celery worker, in a
    thread, or (inline runner) right after the blocking receivers. It must be
    a module-level function (found by its dotted name in another process) and
    gets JSON-serializable arguments (see
    :class:`~triggerhooks.events.background.BackgroundCall`).
    """
    signals = as_signals(signal)
    sender = as_sender(sender)
    if background:
        _check_background(signals, raise_exception)

    def decorator(func: F) -> F:
        _check_receiver(func, background)
        for each in signals:
            each.connect(func, sender=sender, weak=False)
            _set_flags(each, func, raise_exception, background)
        return func

    return decorator


def disconnect(receiver: Callable[..., Any], signal: Signal | Iterable[Signal]) -> None:
    """Disconnect ``receiver`` from the signals (for every sender) and forget its flags."""
    for each in as_signals(signal):
        each.disconnect(receiver)
        raising_receivers.pop((each, make_id(receiver)), None)
        background_receivers.pop((each, make_id(receiver)), None)


def _wanted_arguments(predicate: Callable[..., Any]) -> tuple[bool, list[tuple[str, bool]]]:
    """What a ``filter_events`` predicate asks for: everything (``**kwargs``), or
    ``(name, required)`` pairs; read once, when the receiver is decorated."""
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
    return wants_all, wanted


def _chosen_arguments(wants_all: bool, wanted: list[tuple[str, bool]], sender: Any,
                      kwargs: dict[str, Any], func: Callable[..., Any]) -> dict[str, Any]:
    """The arguments of one send that a predicate asked for, by name."""
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


def filter_events(predicate: Callable[..., Any]) -> Callable[[F], F]:
    """Call the receiver only when ``predicate`` returns a true value.

    The predicate declares the receiver arguments it needs (``sender``
    included) as parameters and gets them by name; a parameter with a default
    may be absent from a signal, one without must be present. Put it below
    ``@on``, so that ``@on`` connects the filtered receiver.
    """
    wants_all, wanted = _wanted_arguments(predicate)

    def decorator(func: F) -> F:
        def accepts(sender: Any, kwargs: dict[str, Any]) -> bool:
            return bool(predicate(**_chosen_arguments(wants_all, wanted, sender, kwargs, func)))

        @functools.wraps(func)
        def receiver(sender: Any, /, **kwargs: Any) -> Any:
            # ``accepts`` inlined: this runs on every send.
            if predicate(**_chosen_arguments(wants_all, wanted, sender, kwargs, func)):
                return func(sender, **kwargs)
            return None

        # A background receiver is filtered where the signal is sent, then runs unfiltered.
        receiver.__th_accepts__ = accepts  # type: ignore[attr-defined]
        receiver.__th_unfiltered__ = func  # type: ignore[attr-defined]
        return receiver  # type: ignore[return-value]

    return decorator
