"""Receivers for triggerhooks signals: ``@on``, ``filter_events`` and a robust ``send_event``.

Modelled on Caluma's events. :mod:`~triggerhooks.events.receivers` connects
receivers (``@on``, ``filter_events``), :mod:`~triggerhooks.events.declaring`
declares an application's own events (``declare_event``),
:mod:`~triggerhooks.events.table` makes the events table of every known
event, :mod:`~triggerhooks.events.dispatch`
sends (``send_event``: a receiver's failure is logged with its dotted name and
never changes stored state; failures of receivers connected with
``raise_exception=True`` are raised together, after every receiver ran, as
:class:`~triggerhooks.exceptions.SignalHandlingError`),
:mod:`~triggerhooks.events.modules` imports the configured receiver modules and
:mod:`~triggerhooks.events.background` turns each call of a ``background=True``
receiver into JSON for the task runner of the session's manager (a Celery
worker, a thread, ...), and :mod:`~triggerhooks.events.adapters` lets a plugin
bring signals of another library (Django's) to ``@on`` and ``send_event``. The
test tools ``capture_signals`` and ``connected`` live in
:mod:`triggerhooks.testing.signals`.
"""

from __future__ import annotations

from .adapters import SignalAdapter, register_signal_adapter, unregister_signal_adapter
from .declaring import declare_event, declared_events, known_events
from .dispatch import send_event
from .modules import RECEIVER_MODULES_ENV, ReceiverModuleError, load_receiver_modules
from .receivers import (
    ANY,
    BEFORE_CHANGE_SIGNALS,
    PREDICATE_EXTRAS,
    disconnect,
    filter_events,
    on,
    sender_name,
)

__all__ = [
    "ANY",
    "BEFORE_CHANGE_SIGNALS",
    "PREDICATE_EXTRAS",
    "RECEIVER_MODULES_ENV",
    "ReceiverModuleError",
    "SignalAdapter",
    "declare_event",
    "declared_events",
    "disconnect",
    "filter_events",
    "known_events",
    "load_receiver_modules",
    "on",
    "register_signal_adapter",
    "send_event",
    "sender_name",
    "unregister_signal_adapter",
]
