"""Signals of other libraries for ``@on``, ``filter_events``, ``disconnect`` and ``send_event``.

The core connects and sends blinker signals only. A plugin that brings another
kind of signal (the Django plugin: ``django.dispatch.Signal``) registers a
:class:`SignalAdapter` that says how to connect, disconnect, send and name
them; ``@on`` then accepts them, with the core's sender, predicate and
``raise_exception`` rules, and still refuses any kind no adapter accepts. The
core never imports the other library: the adapter does.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from blinker import Signal

__all__ = [
    "ForeignSignal",
    "SignalAdapter",
    "adapter_for",
    "register_signal_adapter",
    "signal_adapters",
    "signal_fields",
    "signal_name",
    "unregister_signal_adapter",
]

A = TypeVar("A", bound="SignalAdapter")


class ForeignSignal(Protocol):
    """What a type checker knows of another library's signal: it can be connected to."""

    @property
    def connect(self) -> Callable[..., Any]: ...


class SignalAdapter(ABC):
    """How the core uses one kind of signal that is not blinker's.

    ``connect`` must follow the core's rules: connect strongly; call the
    receiver as ``receiver(sender, **kwargs)``, only for the given sender
    (``blinker.ANY``: every sender); a failure logged with
    :func:`~triggerhooks.events.dispatch.log_receiver_failure` and raised only
    for ``raise_exception=True``; connecting the same function again (to the
    same signal and sender) replaces the earlier connection.
    """

    kind: str = "signals of another library"
    """What the signals are, for messages ("Django signals")."""

    @abstractmethod
    def accepts(self, signal: object) -> bool:
        """Whether ``signal`` is of this adapter's kind."""

    def name(self, signal: Any) -> str:
        """The signal's name, for messages and logs."""
        return repr(signal)

    def fields(self, signal: Any) -> tuple[str, ...]:
        """The keyword arguments every send passes (``()``: unknown, nothing is checked);
        ``@on`` checks receivers and ``filter_events`` predicates against them."""
        return ()

    def check(self, signal: Any, *, background: bool, priority: int) -> None:
        """Raise ``ValueError`` for a flag the signal cannot honour: by default, the
        core's own (``background=True``, a ``priority``)."""
        if background:
            raise ValueError(
                f"background=True runs a receiver on the task runner of a triggerhooks "
                f"signal's session; {self.name(signal)} is one of the {self.kind}, whose "
                "receivers run in the sending call: connect it without background=True")
        if priority:
            raise ValueError(
                f"priority orders the receivers of triggerhooks signals; {self.name(signal)} "
                f"is one of the {self.kind}, whose receivers run in connection order: "
                "connect it without priority=")

    @abstractmethod
    def connect(self, signal: Any, receiver: Callable[..., Any], sender: Any,
                raise_exception: bool) -> None:
        """Connect ``receiver`` strongly, for ``sender`` (``ANY``: every sender)."""

    @abstractmethod
    def disconnect(self, signal: Any, receiver: Callable[..., Any]) -> None:
        """Disconnect ``receiver`` (as ``connect`` connected it) for every sender."""

    @abstractmethod
    def is_connected(self, signal: Any, receiver: Callable[..., Any]) -> bool:
        """Whether ``connect`` connected ``receiver`` to ``signal`` (for any sender)."""

    def send(self, signal: Any, sender: Any, kwargs: dict[str, Any]
             ) -> list[tuple[Callable[..., Any], Any]]:
        """``send_event`` for this kind: call every receiver, a failure never stopping the
        others; raise ``SignalHandlingError`` afterwards for ``raise_exception`` ones."""
        raise TypeError(f"send_event cannot send {self.name(signal)}, one of the {self.kind}: "
                        "send it the way its library does")


_adapters: list[SignalAdapter] = []
_lock = threading.Lock()


def register_signal_adapter(adapter: A) -> A:
    """Make ``@on`` and ``send_event`` accept the signals ``adapter`` accepts (once per
    adapter object; registering it again changes nothing). Returns the adapter."""
    if not isinstance(adapter, SignalAdapter):
        raise TypeError(f"register a SignalAdapter instance, not {adapter!r}")
    with _lock:
        if adapter not in _adapters:
            _adapters.append(adapter)
    return adapter


def unregister_signal_adapter(adapter: SignalAdapter) -> None:
    """Forget ``adapter`` (receivers it connected stay connected)."""
    with _lock:
        if adapter in _adapters:
            _adapters.remove(adapter)


def signal_adapters() -> list[SignalAdapter]:
    """The registered adapters, in registration order."""
    return list(_adapters)


def adapter_for(signal: object) -> SignalAdapter | None:
    """The first registered adapter that accepts ``signal``; ``None`` for a blinker signal
    (the core's own kind) and for what no adapter accepts."""
    if isinstance(signal, Signal):
        return None
    for adapter in list(_adapters):
        if adapter.accepts(signal):
            return adapter
    return None


def signal_name(signal: Any) -> str:
    """A signal's name for messages: blinker's ``name``, an adapter's, else its ``repr``."""
    adapter = adapter_for(signal)
    if adapter is not None:
        return adapter.name(signal)
    return str(getattr(signal, "name", None) or repr(signal))


def signal_fields(signal: Any) -> tuple[str, ...]:
    """The keyword arguments every send of ``signal`` passes (``()``: not known)."""
    adapter = adapter_for(signal)
    if adapter is not None:
        return adapter.fields(signal)
    return tuple(getattr(signal, "fields", ()))
