"""Record the signals sent while a block runs, to assert on them in tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from blinker import NamedSignal, Signal

from ..events import connected
from ..signals import namespace

__all__ = ["SignalRecord", "SignalRecorder", "record_signals"]


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """One signal as sent: its name, its sender and the keyword arguments."""

    signal: str
    sender: Any
    kwargs: dict[str, Any]


class SignalRecorder(list[SignalRecord]):
    """The signals recorded so far, oldest first (appended from any thread)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def _receiver(self, name: str) -> Callable[..., None]:
        def record(sender: Any, **kwargs: Any) -> None:
            with self._lock:
                self.append(SignalRecord(name, sender, kwargs))
        record.__qualname__ = f"SignalRecorder.{name}"
        return record

    @property
    def names(self) -> list[str]:
        """The names of the recorded signals, in order."""
        return [record.signal for record in self]

    def of(self, signal: str | NamedSignal) -> list[SignalRecord]:
        """The records of one signal."""
        name = signal if isinstance(signal, str) else signal.name
        return [record for record in self if record.signal == name]


@contextmanager
def record_signals(*signals: NamedSignal) -> Iterator[SignalRecorder]:
    """Record the given signals (default: every triggerhooks signal) while the block runs."""
    chosen: list[Signal] = list(signals) or [s for _, s in sorted(namespace.items())]
    recorder = SignalRecorder()
    with ExitStack() as stack:
        for signal in chosen:
            name = getattr(signal, "name", repr(signal))
            stack.enter_context(connected(recorder._receiver(name), signal))
        yield recorder
