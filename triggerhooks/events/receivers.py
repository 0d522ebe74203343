"""Connecting receivers: ``@on`` and ``filter_events``.

``@on`` connects a function strongly to one or more signals and records, per
(signal, receiver) pair, whether its failures raise (``raise_exception=True``),
whether it runs in the background (``background=True``) and its ``priority``.
The send loop (:mod:`triggerhooks.events.dispatch`) reads those flags.

Whatever can be seen when a receiver is connected is checked then, so that a
mistake raises where it was made rather than in a log when a signal is sent:
the signals (triggerhooks' own, not a look-alike, or of a kind a plugin's
:class:`~triggerhooks.events.adapters.SignalAdapter` accepts), the sender (a task class or
``@trigger_task`` function for task-level signals, a manager class for
session-level ones), the receiver's parameters and its ``filter_events``
predicates against each signal's payload, and the order of the decorators.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import Any, NamedTuple, TypeVar

from blinker import ANY, NamedSignal, Signal
from blinker._utilities import make_id

from ..registries import trigger_managers
from ..serialization import dotted_name
from ..signals import OrderedSignal, namespace
from ..task import TriggerTask
from .adapters import ForeignSignal, adapter_for, signal_fields, signal_name
from .declaring import declared_events

__all__ = [
    "ANY",
    "BEFORE_CHANGE_SIGNALS",
    "PREDICATE_EXTRAS",
    "as_sender",
    "as_signals",
    "disconnect",
    "filter_events",
    "on",
    "sender_name",
    "use_manager_class",
]

F = TypeVar("F", bound=Callable[..., Any])

AnySignal = Signal | ForeignSignal
"""A blinker signal, or another library's that a registered adapter accepts (Django's)."""

BEFORE_CHANGE_SIGNALS = frozenset({"pre_fire", "pre_replay", "pre_skip"})
"""Signals sent before a change is stored (a receiver may veto it): no background receivers."""

PREDICATE_EXTRAS = ("sender", "sender_name")
"""What a ``filter_events`` predicate may ask for besides the signal's arguments."""

FlagKey = tuple[Signal, Hashable]

raising_receivers: dict[FlagKey, Callable[..., Any]] = {}
"""(signal, receiver id) -> the receiver, for receivers connected with ``raise_exception=True``.
Holding the receiver keeps its id from being reused meanwhile."""

background_receivers: dict[FlagKey, Callable[..., Any]] = {}
"""(signal, receiver id) -> the receiver, for receivers connected with ``background=True``."""

_watched: set[int] = set()

_connected_by_on: dict[Hashable, weakref.WeakSet[Any]] = {}
"""Receiver id -> the signals ``@on`` connected it to (to catch ``@filter_events`` above ``@on``)."""

_manager_class: type | None = None


def use_manager_class(cls: type) -> None:
    """The base class of session-level senders (``triggerhooks/__init__.py`` sets it once)."""
    global _manager_class
    _manager_class = cls


# -- senders ------------------------------------------------------------------------------------


def as_sender(sender: Any) -> Any:
    """A function task (``@trigger_task``) stands for its generated task class as a sender."""
    return getattr(sender, "__trigger_task__", sender)


def sender_name(sender: Any) -> str | None:
    """The registered name of a sender: a task's name (what a configuration's ``run`` names),
    a manager class's key in ``trigger_managers``; ``None`` for anything else."""
    sender = as_sender(sender)
    if not inspect.isclass(sender):
        return None
    if issubclass(sender, TriggerTask):
        return sender.name
    key = trigger_managers.key_of(sender)
    return None if key is None else str(key)


def _is_manager_class(sender: Any) -> bool:
    return inspect.isclass(sender) and (_manager_class is None or issubclass(sender, _manager_class))


def _task_sender_problem(given: Any, sender: Any) -> str | None:
    """Why ``given`` cannot select the sender of a task-level signal (None: it can)."""
    if inspect.isclass(sender) and issubclass(sender, TriggerTask):
        return None
    if isinstance(given, str):
        return (f"a sender is the task itself, not its name {given!r}: pass the @trigger_task "
                "function or the TriggerTask class, or select by name with "
                f"@filter_events(lambda sender_name: sender_name == {given!r}) (the task's "
                "registered name) or lambda task_instance: task_instance.task_name == ... "
                "(the configured task)")
    if isinstance(given, TriggerTask):
        return f"pass the task class, sender={type(given).__name__}, not an instance of it"
    if inspect.isfunction(given) or inspect.ismethod(given):
        return (f"{dotted_name(given)} is a plain function, not a task: declare it with "
                "@trigger_task (then pass the function), or pass a TriggerTask subclass")
    if _is_manager_class(given):
        return (f"task-level signals are sent by the task class, not by the manager class "
                f"{given.__name__}; for one manager, filter: "
                f"@filter_events(lambda manager: isinstance(manager, {given.__name__}))")
    return f"pass a task class or a @trigger_task function, not {given!r}"


def _manager_sender_problem(given: Any, sender: Any) -> str | None:
    """Why ``given`` cannot select the sender of a session-level signal (None: it can)."""
    if (inspect.isclass(sender) and issubclass(sender, TriggerTask)) or hasattr(
            given, "__trigger_task__"):
        return ("session-level signals are sent by the manager class, not by a task; a task's "
                "own signals are task_scheduled, task_started, task_completed, task_failed, ... "
                "(or filter on trigger_name, the configured task's name, for its cascade)")
    if _is_manager_class(sender):
        return None
    if _manager_class is not None and isinstance(given, _manager_class):
        return f"pass the manager class, sender={type(given).__name__}, not a manager"
    return f"pass a TriggerManager subclass, not {given!r}"


def _check_sender(given: Any, sender: Any, signals: list[Signal]) -> None:
    if sender is ANY:
        return
    if given is None:
        if not any(isinstance(each, Signal) for each in signals):  # another library's signals
            raise TypeError(f"@on({signal_name(signals[0])}, sender=None): leave sender out to "
                            "receive the signal from every sender")
        raise TypeError("sender=None is not 'any sender' (it would select only the signals of "
                        "tasks not registered in this process): leave sender out to receive "
                        "the signal from every sender")
    for each in signals:
        kind = getattr(each, "sender_kind", None)
        problem = (_task_sender_problem(given, sender) if kind == "task"
                   else _manager_sender_problem(given, sender) if kind == "manager" else None)
        if problem:
            raise TypeError(f"@on({each.name}, sender=...): {problem}")  # type: ignore[attr-defined]


# -- signals ------------------------------------------------------------------------------------


def _django_hint(given: Any) -> str:
    """What to install when ``given`` is a Django signal and no adapter accepts it."""
    if type(given).__module__.partition(".")[0] != "django":
        return ""
    return (": for Django signals, install triggerhooks-django and add "
            "\"triggerhooks_django\" to INSTALLED_APPS")


def _signal_problem(each: Any) -> str | None:
    """Why ``each`` is not a signal ``@on`` should connect to (None: it is fine)."""
    declared = declared_events()
    if isinstance(each, str):
        if each in namespace:
            return f"pass the signal, not its name: from triggerhooks.signals import {each}"
        if each in declared:
            return (f"pass the signal, not its name: the one declare_event({each!r}, ...) "
                    f"returned, in {declared[each].declared_in}")
        return f"@on expects blinker signals, not the string {each!r}"
    if not isinstance(each, Signal):
        if adapter_for(each) is not None:
            return None
        return f"@on expects blinker signals, not {each!r}{_django_hint(each)}"
    if not isinstance(each, NamedSignal):
        return None
    name = each.name
    if namespace.get(name, each) is not each:
        return (f"{each!r} is a blinker signal named {name!r}, but not triggerhooks' own "
                "(blinker.signal(name) belongs to blinker's default namespace, which "
                f"triggerhooks never sends to): from triggerhooks.signals import {name}")
    if declared.get(name, each) is not each:
        return (f"{each!r} is a signal named {name!r}, but not the event declared under that "
                f"name in {declared[name].declared_in}: use the signal declare_event returned")
    return None


def as_signals(signal: AnySignal | Iterable[AnySignal]) -> list[Any]:
    """One signal or several as a list, refusing anything that is not a signal to connect to
    (a blinker signal, or one a registered adapter accepts)."""
    given: Any = signal  # anything may come in: what is checked below is what the type says
    if isinstance(given, (Signal, str)) or adapter_for(given) is not None:
        candidates: list[Any] = [given]
    elif callable(given) and not isinstance(given, Iterable):
        raise TypeError(f"@on needs the signal to connect {dotted_name(given)} to: write "
                        "@on(task_completed) (or a list of signals), not a bare @on")
    else:
        try:
            candidates = list(given)
        except TypeError:
            raise TypeError(f"@on expects a blinker signal or a list of them, not {given!r}"
                            f"{_django_hint(given)}") from None
    if not candidates:
        raise ValueError("@on needs at least one signal")
    for each in candidates:
        problem = _signal_problem(each)
        if problem:
            raise TypeError(problem)
    return candidates


# -- flags ----------------------------------------------------------------------------------------


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
        fields = getattr(each, "fields", ())
        if fields and "manager" not in fields:
            raise ValueError(
                f"{name} passes no manager, so a background receiver has no runner to run on "
                "(the manager's task runner runs it): connect it without background=True")


def _check_priority(priority: int, signals: list[Any]) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority is an int (higher runs first), not {priority!r}")
    if priority:
        for each in signals:
            if isinstance(each, Signal) and not isinstance(each, OrderedSignal):
                raise ValueError(
                    f"priority orders the receivers of an OrderedSignal (every triggerhooks "
                    f"signal is one); {each!r} is a plain blinker signal, whose receivers run "
                    "in blinker's order: make it a triggerhooks.signals.OrderedSignal")


# -- receivers --------------------------------------------------------------------------------------


class _Filter(NamedTuple):
    """What a ``filter_events`` predicate asks for, read once when the receiver is decorated."""

    predicate: Callable[..., Any]
    wants_all: bool
    wanted: list[tuple[str, bool]]
    """``(parameter name, required)`` pairs."""


def _check_receiver(func: Callable[..., Any], background: bool) -> None:
    if not callable(func):
        raise TypeError(f"@on decorates a callable, not {func!r}")
    if getattr(func, "__th_filter_decorator__", False):
        raise TypeError("filter_events takes a predicate: write "
                        "@filter_events(lambda task_instance: ...) below @on, not a bare "
                        "@filter_events")
    if inspect.iscoroutinefunction(inspect.unwrap(func)):
        raise TypeError(f"{dotted_name(func)} is a coroutine function; signal receivers "
                        "are called synchronously")
    if background and "<locals>" in getattr(inspect.unwrap(func), "__qualname__", "<locals>"):
        raise ValueError(
            f"background receiver {dotted_name(func)} must be a module-level function: "
            "a worker finds it by its dotted name")


def _check_arguments(func: Callable[..., Any], signal: Any) -> None:
    """The receiver can take what ``signal`` passes, and its predicates ask for nothing else."""
    fields = signal_fields(signal)
    if not fields:
        return  # an application's signal without a payload: nothing to check against
    name = signal_name(signal)
    try:
        parameters = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        parameters = None
    if parameters is not None:
        try:
            parameters.bind(None, **dict.fromkeys(fields))
        except TypeError as exc:
            raise TypeError(
                f"receiver {dotted_name(func)} cannot take what {name} passes ({exc}): a "
                "receiver takes the sender first, then the signal's arguments by name ("
                f"{', '.join(fields)}), and should accept **kwargs, e.g. "
                f"def {getattr(func, '__name__', 'receiver')}(sender, **kwargs)") from None
    for each in getattr(func, "__th_filters__", ()):
        _check_predicate(func, each, name, fields)


def _check_predicate(func: Callable[..., Any], spec: _Filter, name: str,
                     fields: tuple[str, ...]) -> None:
    known = (*PREDICATE_EXTRAS, *fields)
    for parameter, required in spec.wanted:
        if required and parameter not in known:
            close = difflib.get_close_matches(parameter, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise TypeError(
                f"filter_events predicate {dotted_name(spec.predicate)} of "
                f"{dotted_name(func)} asks for {parameter!r}, which {name} never passes "
                f"({hint}it passes {', '.join(known)}); give the parameter a default "
                f"({parameter}=None) if only some of the receiver's signals pass it")


def _connect(each: Any, func: Callable[..., Any], sender: Any, priority: int,
             raise_exception: bool, background: bool) -> None:
    adapter = adapter_for(each)
    if adapter is not None:
        adapter.connect(each, func, sender, raise_exception)
        return
    if isinstance(each, OrderedSignal):
        each.connect(func, sender=sender, weak=False, priority=priority)
    else:
        each.connect(func, sender=sender, weak=False)
    _set_flags(each, func, raise_exception, background)


def on(signal: AnySignal | Iterable[AnySignal], sender: Any = ANY, raise_exception: bool = False,
       background: bool = False, priority: int = 0) -> Callable[[F], F]:
    """Connect the decorated function (strongly) to one signal or a list of signals.

    ``sender`` limits it to one sender: a task class or a function declared
    with ``@trigger_task`` for task signals, a manager class for session
    signals. ``raise_exception=True`` makes its failures raise
    :class:`~triggerhooks.exceptions.SignalHandlingError` from the call that
    sent the signal instead of being only logged. ``priority`` orders the
    receivers of a signal: higher runs first, equal priorities in connection
    order. The flags and the priority belong to the (signal, receiver) pair, so
    connecting the same function again replaces them. The receiver is returned
    unchanged.

    ``background=True`` runs the receiver through the task runner of the
    session's manager instead of in the sending call: on a Celery worker, in a
    thread, or (inline runner) right away. It is handed off in its place in
    the order. It must be a module-level function (found by its dotted name in
    another process) and gets JSON-serializable arguments (see
    :class:`~triggerhooks.events.background.BackgroundCall`).

    A signal of another library (Django's, with the Django plugin) goes through
    the :class:`~triggerhooks.events.adapters.SignalAdapter` registered for its
    kind, with the same ``sender``, predicate and ``raise_exception`` rules; it
    takes no ``background`` nor ``priority``.

    Mistakes that can be seen now raise now (``TypeError`` or ``ValueError``):
    a signal that is not a signal (or a look-alike of one of triggerhooks'), a
    sender of the wrong kind, a receiver that cannot take the signal's
    arguments, a ``filter_events`` predicate asking for an argument the signal
    never passes.
    """
    signals = as_signals(signal)
    task_sender = as_sender(sender)
    _check_sender(sender, task_sender, signals)
    _check_priority(priority, signals)
    if background:
        _check_background([each for each in signals if isinstance(each, Signal)],
                          raise_exception)
    for each in signals:
        adapter = adapter_for(each)
        if adapter is not None:
            adapter.check(each, background=background, priority=priority)

    def decorator(func: F) -> F:
        _check_receiver(func, background)
        for each in signals:
            _check_arguments(func, each)
        for each in signals:
            _connect(each, func, task_sender, priority, raise_exception, background)
        _connected_by_on.setdefault(make_id(func), weakref.WeakSet()).update(signals)
        return func

    return decorator


def disconnect(receiver: Callable[..., Any], signal: AnySignal | Iterable[AnySignal]) -> None:
    """Disconnect ``receiver`` from the signals (for every sender) and forget its flags."""
    receiver_id = make_id(receiver)
    for each in as_signals(signal):
        adapter = adapter_for(each)
        if adapter is not None:
            adapter.disconnect(each, receiver)
        else:
            each.disconnect(receiver)
            raising_receivers.pop((each, receiver_id), None)
            background_receivers.pop((each, receiver_id), None)
        connected = _connected_by_on.get(receiver_id)
        if connected is not None:
            connected.discard(each)
            if not connected:
                _connected_by_on.pop(receiver_id, None)


# -- filter_events ----------------------------------------------------------------------------------


def _read_predicate(predicate: Callable[..., Any]) -> _Filter:
    """What a ``filter_events`` predicate asks for: everything (``**kwargs``), or
    ``(name, required)`` pairs; read once, when the receiver is decorated."""
    if not callable(predicate) or isinstance(predicate, Signal):
        raise TypeError(f"filter_events takes a predicate function, not {predicate!r}: "
                        "@filter_events(lambda task_instance: task_instance.name.endswith('#0'))")
    try:
        parameters = inspect.signature(predicate).parameters
    except (TypeError, ValueError):
        raise TypeError(f"filter_events cannot read the parameters of {predicate!r}: give it a "
                        "function whose parameters name the arguments it needs") from None
    wants_all = False
    wanted: list[tuple[str, bool]] = []
    for name, parameter in parameters.items():
        if parameter.kind is parameter.VAR_KEYWORD:
            wants_all = True
        elif parameter.kind is parameter.POSITIONAL_ONLY:
            raise TypeError(f"filter_events predicate {dotted_name(predicate)}: parameter "
                            f"{name!r} is positional-only, but receiver arguments are passed "
                            "by name")
        elif parameter.kind is not parameter.VAR_POSITIONAL:
            wanted.append((name, parameter.default is parameter.empty))
    return _Filter(predicate, wants_all, wanted)


def _chosen_arguments(spec: _Filter, sender: Any, kwargs: dict[str, Any],
                      func: Callable[..., Any]) -> dict[str, Any]:
    """The arguments of one send that a predicate asked for, by name."""
    if spec.wants_all:
        return {"sender": sender, "sender_name": sender_name(sender), **kwargs}
    chosen = {}
    for name, required in spec.wanted:
        if name in kwargs:
            chosen[name] = kwargs[name]
        elif name == "sender":
            chosen[name] = sender
        elif name == "sender_name":
            chosen[name] = sender_name(sender)
        elif required:
            raise TypeError(
                f"filter_events predicate of {dotted_name(func)} asks for {name!r}, "
                f"but the signal passes only: sender, {', '.join(kwargs)}")
    return chosen


def _is_connected(signal: Any, func: Callable[..., Any]) -> bool:
    adapter = adapter_for(signal)
    if adapter is not None:
        return adapter.is_connected(signal, func)
    return make_id(func) in signal.receivers


def _connected_signals(func: Callable[..., Any]) -> list[Any]:
    """The signals ``@on`` connected ``func`` itself to, that it is still connected to."""
    return [each for each in _connected_by_on.get(make_id(func), ()) if _is_connected(each, func)]


def _refuse_wrong_order(func: Callable[..., Any], predicate: Callable[..., Any]) -> None:
    """``@filter_events`` above ``@on`` would filter a copy nobody connected: undo and say so."""
    signals = _connected_signals(func)
    if not signals:
        return
    disconnect(func, signals)
    ours = list(namespace)
    names = sorted((signal_name(each) for each in signals),
                   key=lambda name: (ours.index(name) if name in ours else len(ours), name))
    shown = names[0] if len(names) == 1 else f"[{', '.join(names)}]"
    raise TypeError(
        f"@filter_events is above @on on {dotted_name(func)}: @on had already connected it "
        f"(to {', '.join(names)}) unfiltered, so the filter would never run. Put "
        "@filter_events below @on, so that @on connects the filtered receiver:\n\n"
        f"    @on({shown})\n    @filter_events({getattr(predicate, '__name__', 'predicate')})\n"
        f"    def {getattr(func, '__name__', 'receiver')}(sender, **kwargs): ...")


def filter_events(predicate: Callable[..., Any]) -> Callable[[F], F]:
    """Call the receiver only when ``predicate`` returns a true value.

    The predicate declares the receiver arguments it needs as parameters and
    gets them by name: the signal's arguments, ``sender`` and ``sender_name``
    (the sender's registered name: for a task-level signal the task's name,
    as a configuration's ``run`` names it). A parameter with a default may be
    absent from a signal; one without must be passed by every signal the
    receiver is connected to (``@on`` checks it). Put it below ``@on``, so
    that ``@on`` connects the filtered receiver; above, it raises.
    """
    spec = _read_predicate(predicate)

    def decorator(func: F) -> F:
        if not callable(func):
            raise TypeError(f"filter_events filters a receiver function, not {func!r}")
        _refuse_wrong_order(func, predicate)

        inner: Callable[[Any, dict[str, Any]], bool] | None = getattr(func, "__th_accepts__", None)

        def accepts(sender: Any, kwargs: dict[str, Any]) -> bool:
            return bool(predicate(**_chosen_arguments(spec, sender, kwargs, func))) and (
                inner is None or inner(sender, kwargs))

        @functools.wraps(func)
        def receiver(sender: Any, /, **kwargs: Any) -> Any:
            # ``accepts`` inlined: this runs on every send.
            if predicate(**_chosen_arguments(spec, sender, kwargs, func)):
                return func(sender, **kwargs)
            return None

        # A background receiver is filtered where the signal is sent, then runs unfiltered.
        receiver.__th_accepts__ = accepts  # type: ignore[attr-defined]
        receiver.__th_unfiltered__ = getattr(func, "__th_unfiltered__", func)  # type: ignore[attr-defined]
        receiver.__th_filters__ = [spec, *getattr(func, "__th_filters__", ())]  # type: ignore[attr-defined]
        return receiver  # type: ignore[return-value]

    decorator.__th_filter_decorator__ = True  # type: ignore[attr-defined]
    return decorator
