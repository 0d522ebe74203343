"""An application's (or a plugin's) own events: :func:`declare_event`, and every known event.

A declared event is an :class:`~triggerhooks.signals.OrderedSignal` like the
core's signals: ``@on``, ``filter_events``, ``send_event``, priorities,
background receivers and typed payloads work the same, its arguments are
checked when receivers connect and when it is sent, and it has a row in the
events table (:mod:`triggerhooks.events.table`, ``triggerhooks events``).
"""

from __future__ import annotations

import sys
import threading
import typing
from collections.abc import Mapping

from ..exceptions import EventDeclarationError
from ..signals import EventArgument, OrderedSignal, namespace

__all__ = ["declare_event", "declared_events", "known_events"]

_declared: dict[str, OrderedSignal] = {}
_lock = threading.Lock()


def _shape(arguments: tuple[EventArgument, ...]) -> tuple[tuple[str, str | None, bool], ...]:
    """What must not change when an event is declared again: names, types, optionality."""
    return tuple((each.name, each.type, each.required) for each in arguments)


def _shown(arguments: tuple[EventArgument, ...]) -> str:
    return ", ".join(f"{each.name}: {each.type}" if each.type else each.name
                     for each in arguments) or "no arguments"


def _check(name: object, arguments: object, doc: object) -> None:
    if not isinstance(name, str) or not name or name != name.strip():
        raise TypeError(f"an event's name is a non-empty string, not {name!r}")
    if name in namespace:
        raise EventDeclarationError(
            f"{name!r} is one of triggerhooks' own signals: import it (from triggerhooks.signals "
            f"import {name}), or give your event a name of its own")
    if not isinstance(doc, str) or not doc.strip():
        raise TypeError(f"event {name!r}: doc is a non-empty string (the events table shows its "
                        "first line)")
    if arguments is None or typing.is_typeddict(arguments):
        return
    if not isinstance(arguments, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in arguments.items()):
        raise TypeError(f"event {name!r}: arguments are a TypedDict class or a mapping of "
                        f"argument name -> description, not {arguments!r}")


def declare_event(name: str, arguments: type | Mapping[str, str] | None = None, *, doc: str,
                  emitted_by: str = "", order: str = "") -> OrderedSignal:
    """Declare an event of your application (or plugin) and return its signal.

    ``arguments`` are the keyword arguments every send passes, besides the
    sender: a ``TypedDict`` class (types for the table and for receivers'
    ``**kwargs: Unpack[...]``; a field annotated ``Annotated[type, "text"]``
    gets that description; ``NotRequired`` fields may be left out), or a
    mapping of name -> description, or ``None`` for none. ``doc`` says what
    happened (the table shows its first line), ``emitted_by`` what sends it
    (a class, a function, a mutation) and ``order`` when it is sent relative
    to other events; the last two are Markdown.

    Declaring a name again with the same arguments (a module reloaded, or
    imported twice) returns the same signal, so receivers stay connected; its
    doc, ``emitted_by`` and ``order`` become the new ones. With other
    arguments, or under the name of one of triggerhooks' signals, it raises
    :class:`~triggerhooks.exceptions.EventDeclarationError`.
    """
    _check(name, arguments, doc)
    typed: type | None = None
    notes: dict[str, str] | None = None
    if isinstance(arguments, type):
        typed = arguments
    else:
        notes = dict(arguments or {})
    module = sys._getframe(1).f_globals.get("__name__")
    # Made first, even when the name is declared already: it checks the arguments.
    signal = OrderedSignal(name, doc, payload=typed, arguments=notes, emitted_by=emitted_by,
                           order=order, declared_in=module)
    with _lock:
        existing = _declared.get(name)
        if existing is None:
            _declared[name] = signal
            return signal
        if _shape(existing.arguments) != _shape(signal.arguments):
            raise EventDeclarationError(
                f"event {name!r} is declared already (in {existing.declared_in}) with "
                f"{_shown(existing.arguments)}; declared again (in {module}) with "
                f"{_shown(signal.arguments)}: an event's arguments are fixed, so give the new "
                "event another name (or change the first declaration)")
        existing.describe(payload=typed, arguments=notes, emitted_by=emitted_by, order=order,
                          doc=doc)
        return existing


def declared_events() -> dict[str, OrderedSignal]:
    """The events declared so far in this process, by name, in declaration order."""
    with _lock:
        return dict(_declared)


def known_events() -> list[OrderedSignal]:
    """triggerhooks' own signals, then every declared event, in declaration order."""
    core = [signal for signal in namespace.values() if isinstance(signal, OrderedSignal)]
    return core + list(declared_events().values())


def _forget_events(names: set[str]) -> None:
    """Undeclare events (for tests that declare their own); their signals stay as they are."""
    with _lock:
        for name in names:
            _declared.pop(name, None)
