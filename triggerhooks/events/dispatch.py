"""Sending a signal robustly: ``send_event``, the one send loop of triggerhooks.

Modelled on Caluma's events. A receiver's failure is logged with its dotted
name and never changes stored state; failures of receivers connected with
``raise_exception=True`` are collected and raised together, after every
receiver ran, as :class:`~triggerhooks.exceptions.SignalHandlingError`.
Receivers connected with ``background=True`` are not called here: in its place
in the order, each call goes to the hand-off that :func:`use_background_hand_off` installed
(:func:`triggerhooks.events.background.hand_off`, wired when ``triggerhooks``
is imported), which passes it to the task runner of the session's manager.
A signal of another library goes to the ``send`` of the adapter registered for
its kind (:mod:`triggerhooks.events.adapters`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from blinker import Signal
from blinker._utilities import make_id

from ..exceptions import SignalHandlingError, exception_text
from ..serialization import dotted_name
from ..signals import NO_SENDER, OrderedSignal, pop_sender
from .adapters import ForeignSignal, adapter_for, signal_name
from .receivers import as_sender, background_receivers, raising_receivers

__all__ = ["HandOff", "log_receiver_failure", "send_event", "use_background_hand_off"]

# The name users configure and read in the docs: the public package, not this module.
log = logging.getLogger("triggerhooks.events")

HandOff = Callable[[Signal, Callable[..., Any], Any, dict[str, Any]], None]
"""``hand_off(signal, receiver, sender, kwargs)``: run a background receiver's call elsewhere."""


def _no_hand_off(signal: Signal, receiver: Callable[..., Any], sender: Any,
                 kwargs: dict[str, Any]) -> None:
    raise RuntimeError(f"background receiver {dotted_name(receiver)}: no hand-off is installed")


_hand_off: HandOff = _no_hand_off


def use_background_hand_off(hand_off: HandOff) -> None:
    """Send the calls of background receivers to ``hand_off`` (set once, at import)."""
    global _hand_off
    _hand_off = hand_off


def send_event(signal: Signal | ForeignSignal, sender: Any = NO_SENDER, /,
               **kwargs: Any) -> list[tuple[Callable[..., Any], Any]]:
    """Call every receiver of ``signal`` for ``sender``, in order; a failure never stops the others.

    The sender is given by position or by keyword (``sender=CompleteWorkItem``, as
    Caluma's and Django's code write it), with the same meaning: receivers
    connected for that sender are called, and every receiver gets it as its
    first positional argument (never also as a keyword). Giving it both ways
    is a ``TypeError``; not at all, ``None``. A ``@trigger_task`` function
    stands for its task class, as in ``@on``. A signal that describes its
    arguments (every triggerhooks signal, every declared event) refuses a send
    with missing or unexpected ones (``TypeError``) before any receiver runs.

    Receivers are called in the signal's order (for triggerhooks' signals:
    priority, then connection); a background receiver's call is handed to its
    runner in its place in that order.

    Returns ``(receiver, return value)`` pairs, with the exception as the value
    of a receiver that failed. Each failure is logged (ERROR, with traceback)
    under the receiver's dotted name. If receivers connected with
    ``raise_exception=True`` failed, their exceptions are raised together as
    :class:`~triggerhooks.exceptions.SignalHandlingError` after every receiver ran.

    A signal of another library (Django's, with the Django plugin) is sent by
    the adapter registered for its kind, with the same rules.
    """
    sender = pop_sender(sender, kwargs, "send_event")
    if not isinstance(signal, Signal):
        adapter = adapter_for(signal)
        if adapter is None:
            raise TypeError(f"send_event sends blinker signals (or those of a registered "
                            f"adapter's kind, such as Django's), not {signal!r}")
        return adapter.send(signal, as_sender(sender), kwargs)
    if isinstance(signal, OrderedSignal):
        signal.check_arguments(kwargs)
    if not signal.receivers or signal.is_muted:
        return []
    sender = as_sender(sender)
    results: list[tuple[Callable[..., Any], Any]] = []
    caught: list[Exception] = []
    for receiver in signal.receivers_for(sender):
        try:
            if background_receivers and (signal, make_id(receiver)) in background_receivers:
                _hand_off(signal, receiver, sender, kwargs)
                results.append((receiver, None))
                continue
            results.append((receiver, receiver(sender, **kwargs)))
        except Exception as exc:
            results.append((receiver, exc))
            raising = (signal, make_id(receiver)) in raising_receivers
            if raising:
                caught.append(exc)
            log_receiver_failure(signal, receiver, exc,
                                 "raise_exception: raised once all receivers ran" if raising
                                 else "")
    if caught:
        raise SignalHandlingError(caught)
    return results


def log_receiver_failure(signal: Any, receiver: Callable[..., Any], exc: BaseException,
                         note: str = "") -> None:
    """Log a receiver's failure as the send loop does: ERROR on ``triggerhooks.events``, with
    the receiver's dotted name, the signal's name, ``note`` (what happens to the error, if
    anything is said) and the traceback. For adapters of other libraries' signals."""
    log.error("receiver %s of signal %s failed%s: %s: %s", dotted_name(receiver),
              signal_name(signal), f" ({note})" if note else "", type(exc).__name__,
              exception_text(exc), exc_info=exc)
