"""Django signals through ``@on`` and ``filter_events``: the adapter this app registers.

Importing ``triggerhooks_django`` registers :data:`DJANGO_SIGNALS` (Django
imports every installed app before any app is ready, so receiver modules
anywhere in the project can use it). Then ``@on(post_save, sender=Answer)``
connects to Django's signal with triggerhooks' rules:

* the receiver is called ``receiver(sender, signal=..., **arguments)``, only
  for its ``sender`` (Django matches senders by identity; a model signal also
  takes ``"app_label.Model"``), and connected strongly, once: a ``dispatch_uid``
  made from its dotted name means a reloaded module replaces its receivers
  instead of adding them, and connecting a function again replaces it;
* for Django's own signals the arguments are known, so a receiver that cannot
  take them or a ``filter_events`` predicate asking for another one is refused
  when it is connected;
* a failure is logged (``triggerhooks.events``, under the receiver's dotted
  name) and the other receivers run; with ``raise_exception=True`` it is raised
  at once, as itself: Django's ``Signal.send`` calls receivers one by one, so
  the receivers after it do not run, and the error leaves ``Model.save()``,
  rolling back the ``transaction.atomic()`` block around it (as in Caluma);
* ``send_event(post_save, ...)`` keeps the core's rules instead: every
  receiver runs (Django's ``send_robust``), then the errors of
  ``raise_exception`` receivers are raised together as ``SignalHandlingError``.

``background=True`` and ``priority=`` are refused: Django runs receivers in
the sending call, in connection order.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.dispatch import Signal

from triggerhooks import SignalHandlingError
from triggerhooks.ext import ANY, SignalAdapter, dotted_name, log_receiver_failure

__all__ = ["DJANGO_SIGNALS", "DjangoSignals"]

_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "pre_init": ("args", "kwargs"),
    "post_init": ("instance",),
    "pre_save": ("instance", "raw", "using", "update_fields"),
    "post_save": ("instance", "created", "update_fields", "raw", "using"),
    "pre_delete": ("instance", "using", "origin"),
    "post_delete": ("instance", "using", "origin"),
    "m2m_changed": ("action", "instance", "reverse", "model", "pk_set", "using"),
    "got_request_exception": ("request",),
    "setting_changed": ("setting", "value", "enter"),
    "connection_created": ("connection",),
}
"""What Django's own signals pass besides ``sender`` and ``signal`` (Django 4.2 to 5.2);
the others (``request_started``, ``post_migrate``, ...) pass arguments that vary."""

_UID_PREFIX = "triggerhooks:"


def _built_in_signals() -> dict[int, str]:
    """``id(signal) -> name`` for the signals Django itself sends."""
    from django.core import signals as core
    from django.db.backends import signals as backends
    from django.db.models import signals as models

    return {id(value): name for module in (models, core, backends)
            for name, value in vars(module).items() if isinstance(value, Signal)}


def _uid(receiver: Callable[..., Any]) -> str:
    """The ``dispatch_uid`` of a receiver: its dotted name, so that a reloaded module's new
    function replaces the old one; with its identity too when the name is not unique (a
    nested function or lambda, a method of one object, a callable object)."""
    module = getattr(receiver, "__module__", None)
    qualname = getattr(receiver, "__qualname__", None)
    if inspect.ismethod(receiver):
        return f"{_UID_PREFIX}{module}.{qualname}@{id(receiver.__self__)}"
    if module and qualname and "<" not in qualname:
        return f"{_UID_PREFIX}{module}.{qualname}"
    return f"{_UID_PREFIX}{dotted_name(receiver)}@{id(receiver)}"


@dataclass
class _Connection:
    """The senders ``@on`` connected one receiver to one signal for (``None``: any)."""

    receiver: Callable[..., Any]
    senders: list[Any] = field(default_factory=list)


class DjangoSignals(SignalAdapter):
    """``django.dispatch.Signal`` (and its subclasses, such as ``ModelSignal``) for ``@on``,
    ``filter_events``, ``disconnect`` and ``send_event``."""

    kind = "Django signals"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[tuple[Signal, str], _Connection] = {}
        """(signal, dispatch_uid) -> what ``@on`` connected (signals hash by identity)."""
        self._names: dict[int, str] | None = None

    def accepts(self, signal: object) -> bool:
        return isinstance(signal, Signal)

    def name(self, signal: Any) -> str:
        """``post_save`` for Django's own signals; the ``repr`` for others."""
        if self._names is None:
            self._names = _built_in_signals()
        return self._names.get(id(signal)) or repr(signal)

    def fields(self, signal: Any) -> tuple[str, ...]:
        """``signal`` and the arguments of Django's own signals; ``()`` (not checked) for the
        rest."""
        arguments = _ARGUMENTS.get(self.name(signal))
        return ("signal", *arguments) if arguments is not None else ()

    def check(self, signal: Any, *, background: bool, priority: int) -> None:
        if background:
            raise ValueError(
                f"{self.name(signal)} is a Django signal: Django runs its receivers in the "
                "call that sends it (the save, the request), so they cannot run in the "
                "background; connect it without background=True, and to start work once the "
                "transaction commits, call triggerhooks_django.fire_on_commit(...) in it")
        if priority:
            raise ValueError(
                f"{self.name(signal)} is a Django signal: Django calls its receivers in the "
                "order they were connected; connect it without priority=")

    def connect(self, signal: Any, receiver: Callable[..., Any], sender: Any,
                raise_exception: bool) -> None:
        """Connect strongly for ``sender`` (``ANY``: Django's ``None``), replacing an earlier
        connection of the same receiver (or of a reloaded module's same function)."""
        wanted = None if sender is ANY else sender
        uid = _uid(receiver)
        call = self._call(receiver, raise_exception)
        with self._lock:
            signal.disconnect(sender=wanted, dispatch_uid=uid)
            signal.connect(call, sender=wanted, weak=False, dispatch_uid=uid)
            connection = self._connections.setdefault((signal, uid), _Connection(receiver))
            connection.receiver = receiver
            if not any(each is wanted for each in connection.senders):
                connection.senders.append(wanted)

    def disconnect(self, signal: Any, receiver: Callable[..., Any]) -> None:
        uid = _uid(receiver)
        with self._lock:
            connection = self._connections.pop((signal, uid), None)
            for each in connection.senders if connection else ():
                signal.disconnect(sender=each, dispatch_uid=uid)

    def is_connected(self, signal: Any, receiver: Callable[..., Any]) -> bool:
        uid = _uid(receiver)
        return any(entry[0][0] == uid for entry in signal.receivers)

    def connected_receivers(self) -> list[tuple[Signal, Callable[..., Any]]]:
        """Every ``(signal, receiver)`` pair ``@on`` connected and that is still connected
        (for tests, which disconnect what they connected)."""
        return [(signal, connection.receiver)
                for (signal, _), connection in list(self._connections.items())
                if self.is_connected(signal, connection.receiver)]

    def send(self, signal: Any, sender: Any, kwargs: dict[str, Any]
             ) -> list[tuple[Callable[..., Any], Any]]:
        """Django's ``send_robust`` with the core's rules: every receiver runs; a failure is
        logged (a plain Django receiver's too); the errors of ``raise_exception`` receivers
        are raised together afterwards as ``SignalHandlingError``."""
        results: list[tuple[Callable[..., Any], Any]] = []
        caught: list[Exception] = []
        for call, value in signal.send_robust(sender, **kwargs):
            receiver = getattr(call, "__th_receiver__", None)
            if receiver is None:  # connected with Django's connect() or @receiver
                if isinstance(value, Exception):
                    log_receiver_failure(signal, call, value)
                results.append((call, value))
                continue
            results.append((receiver, value))
            if isinstance(value, Exception) and call.__th_raise_exception__:
                caught.append(value)
        if caught:
            raise SignalHandlingError(caught)
        return results

    @staticmethod
    def _call(receiver: Callable[..., Any], raise_exception: bool) -> Callable[..., Any]:
        """What Django calls: ``call(signal=..., sender=..., **arguments)``."""

        def call(signal: Signal, sender: Any, **arguments: Any) -> Any:
            try:
                return receiver(sender, signal=signal, **arguments)
            except Exception as exc:
                log_receiver_failure(signal, receiver, exc,
                                     "raise_exception: raised" if raise_exception else "")
                if raise_exception:
                    raise
                return exc  # Django's send() returns it as this receiver's response

        call.__th_receiver__ = receiver  # type: ignore[attr-defined]
        call.__th_raise_exception__ = raise_exception  # type: ignore[attr-defined]
        return call


DJANGO_SIGNALS = DjangoSignals()
"""The adapter ``triggerhooks_django`` registers when it is imported."""
