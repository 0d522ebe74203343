"""Signals in tests: record what was sent (``capture_signals``), connect for one block
(``connected``). Both are also importable from ``triggerhooks``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from blinker import ANY, Signal

from ..events.receivers import as_sender, as_signals, disconnect, on
from ..signals import namespace

__all__ = ["CapturedSignals", "SentSignal", "capture_signals", "connected"]

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def connected(receiver: F, signal: Signal | Iterable[Signal], sender: Any = ANY,
              raise_exception: bool = False, background: bool = False,
              priority: int = 0) -> Iterator[F]:
    """Connect ``receiver`` like ``@on`` for the duration of a ``with`` block (handy in tests).

    On exit the receiver is disconnected from the signals (for every sender).
    """
    signals = as_signals(signal)
    on(signals, sender=sender, raise_exception=raise_exception, background=background,
       priority=priority)(receiver)
    try:
        yield receiver
    finally:
        disconnect(receiver, signals)


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

    def of(self, signal: Signal | str, sender: Any = ANY) -> list[SentSignal]:
        """The captured sends of one signal (or signal name); with ``sender``, only those it
        sent (a task class or its ``@trigger_task`` function, a manager class)."""
        name = signal if isinstance(signal, str) else getattr(signal, "name", None)
        wanted = as_sender(sender)
        return [sent for sent in self
                if sent.name == name and (wanted is ANY or sent.sender is wanted)]


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

    sender = as_sender(sender)
    try:
        for each in chosen:
            record = recorder(getattr(each, "name", repr(each)))
            each.connect(record, sender=sender, weak=False)
            recorders.append((each, record))
        yield captured
    finally:
        for each, record in recorders:
            each.disconnect(record)
