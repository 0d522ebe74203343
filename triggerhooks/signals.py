"""Every signal triggerhooks sends, in one blinker namespace, each with its typed payload.

Session-level signals are sent by the manager class (``type(manager)``);
task-level ones by the task class, so ``@on(task_completed, sender=MyTask)``
picks one task. The keyword arguments of each signal are described once, by
a :class:`~typing.TypedDict` (its *payload*): :class:`PreFire` for
``pre_fire``, :class:`TaskCompleted` for ``task_completed``, ... Every payload
has ``manager`` and ``session_uid`` (:class:`SessionPayload`); a receiver can
name the payload in its type hints (``**kwargs: Unpack[TaskCompleted]``), and
``@on`` checks receivers and ``filter_events`` predicates against it when it
connects them. Receivers should accept ``**kwargs``: payloads may grow.

Receivers of one signal run by ``priority`` (``@on(..., priority=10)``: higher
first), then in the order they were first connected, whatever their sender.
Each signal also says who emits it and when (``emitted_by``, ``order``, notes
on its ``arguments``): the events table of ``docs/events.md`` and of
``triggerhooks events`` is made from them.
"""

from __future__ import annotations

import difflib
import itertools
import keyword
import re
import typing
import weakref
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator, Mapping, MutableSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

from blinker import ANY, NamedSignal, Namespace
from blinker._utilities import make_id
from blinker.base import ANY_ID as _ANY_ID

from .serialization import JsonDict

if TYPE_CHECKING:  # type-only: the payloads name modules this one may not import
    from .manager import TriggerManager
    from .models import TaskConfig, TaskInstance

__all__ = [
    "RESERVED_ARGUMENTS",
    "ConfigurationUpdated",
    "EventArgument",
    "InstanceAbandoned",
    "OrderedSignal",
    "PostFire",
    "PostReplay",
    "PostSkip",
    "PreFire",
    "PreReplay",
    "PreSkip",
    "SenderKind",
    "SessionFinalized",
    "SessionPayload",
    "TaskCompleted",
    "TaskFailed",
    "TaskPayload",
    "TaskScheduled",
    "TaskStarted",
    "configuration_updated",
    "instance_abandoned",
    "namespace",
    "pop_sender",
    "post_fire",
    "post_replay",
    "post_skip",
    "pre_fire",
    "pre_replay",
    "pre_skip",
    "session_finalized",
    "task_completed",
    "task_failed",
    "task_scheduled",
    "task_started",
]

F = TypeVar("F", bound=Callable[..., Any])

SenderKind = Literal["manager", "task"]
"""Who sends a signal: the manager class (session-level) or the task class (task-level)."""


# -- the payloads -----------------------------------------------------------------------------


class SessionPayload(TypedDict):
    """What every signal passes."""

    manager: TriggerManager
    """The manager that made the change."""
    session_uid: str
    """``manager.storage.uid``."""


class TaskPayload(SessionPayload):
    """What every task-level signal passes."""

    task_instance: TaskInstance
    """The instance, as the change left it."""


class PreFire(SessionPayload):
    """``pre_fire``: a firing about to be stored."""

    trigger_name: str
    trigger_kwargs: JsonDict
    """As they will be stored (JSON types)."""


class PostFire(SessionPayload):
    """``post_fire``: a firing was stored."""

    trigger_name: str
    trigger_kwargs: JsonDict
    """As they were stored (JSON types)."""
    tasks_scheduled: list[TaskInstance]
    """The instances this firing scheduled."""


class TaskScheduled(TaskPayload):
    """``task_scheduled``: an instance was stored as scheduled."""


class TaskStarted(TaskPayload):
    """``task_started``: a runner claimed an instance; it is running."""


class TaskCompleted(TaskPayload):
    """``task_completed``: an instance finished."""

    result: JsonDict
    """What the task returned: the kwargs of its cascade."""


class TaskFailed(TaskPayload):
    """``task_failed``: an instance failed."""

    exception: BaseException | None
    """What the task raised; ``None`` when set by hand or for a lost worker."""


class InstanceAbandoned(TaskPayload):
    """``instance_abandoned``: an unstarted instance was abandoned (its ``unless`` fired)."""


class PreReplay(TaskPayload):
    """``pre_replay``: a failed instance (``task_instance``) is about to be replayed."""


class PostReplay(TaskPayload):
    """``post_replay``: a replay copy (``task_instance``) was stored."""

    parent: str
    """The name of the failed instance it replays."""


class PreSkip(TaskPayload):
    """``pre_skip``: a failed instance is about to be skipped."""

    cascade: bool


class PostSkip(TaskPayload):
    """``post_skip``: a failed instance was skipped (and its cascade fired)."""

    cascade: bool


class SessionFinalized(SessionPayload):
    """``session_finalized``: the session's ``sessionFinalized`` firing was stored."""


class ConfigurationUpdated(SessionPayload):
    """``configuration_updated``: ``update_configuration`` stored tasks."""

    tasks: dict[str, TaskConfig]
    """Name -> configuration of the tasks given."""


# -- the signal class ---------------------------------------------------------------------------


class _OrderedSet(MutableSet[Any]):
    """Keeps receivers in connection order (blinker's default ``set`` does not)."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._items = dict.fromkeys(items)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, value: Any) -> None:
        self._items[value] = None

    def discard(self, value: Any) -> None:
        self._items.pop(value, None)

    def copy(self) -> _OrderedSet:
        return _OrderedSet(self._items)




RESERVED_ARGUMENTS = frozenset({"sender", "sender_name"})
"""Names no signal argument may have: a receiver gets the sender first, and a
``filter_events`` predicate gets ``sender`` and ``sender_name`` besides the arguments."""


@dataclass(frozen=True, slots=True)
class EventArgument:
    """One keyword argument of a signal, as the events table shows it."""

    name: str
    type: str | None
    """As annotated in the payload (``None``: declared without a type)."""
    description: str = ""
    """What it is (Markdown), from the declaration."""
    required: bool = True
    """False for a ``NotRequired`` field of the payload: some sends leave it out."""


class _NoSender:
    """The default of a sender not passed by position (``None`` is a sender like any other)."""

    def __repr__(self) -> str:
        return "<no sender>"


NO_SENDER: Any = _NoSender()


def pop_sender(sender: Any, kwargs: dict[str, Any], call: str) -> Any:
    """The sender given by position or as ``sender=`` in ``kwargs`` (removed from them),
    with the same meaning; ``None`` if neither. Both is a ``TypeError``."""
    if "sender" in kwargs:
        if sender is not NO_SENDER:
            raise TypeError(f"{call}() got the sender twice (by position: {sender!r}, and as "
                            f"sender={kwargs['sender']!r}); pass it once, either way")
        return kwargs.pop("sender")
    return None if sender is NO_SENDER else sender


_WRAPPED = re.compile(r"(?:typing(?:_extensions)?\.)?(NotRequired|Required)\[(.*)\]", re.DOTALL)


def _unwrap(hint: Any) -> tuple[bool | None, Any]:
    """Whether ``hint`` says ``Required`` (True) or ``NotRequired`` (False) or neither
    (None), and the type inside; an annotation kept as a forward reference as its text."""
    if isinstance(hint, typing.ForwardRef):
        hint = hint.__forward_arg__
    if isinstance(hint, str):
        found = _WRAPPED.fullmatch(hint.strip())
        return (found[1] == "Required", found[2]) if found else (None, hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Required, typing.NotRequired):
        return origin is typing.Required, typing.get_args(hint)[0]
    return None, hint


def _bare(hint: Any) -> Any:
    """``hint`` without ``Required`` / ``NotRequired`` (which say nothing of the type)."""
    return _unwrap(hint)[1]


def _type_text(hint: Any) -> str:
    """An annotation as people write it: ``TaskInstance``, ``dict[str, Any]``."""
    hint = _bare(hint)
    if isinstance(hint, str):
        return hint
    if typing.get_origin(hint) is typing.Annotated:
        return _type_text(typing.get_args(hint)[0])
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    return str(hint).replace("typing.", "").replace("NoneType", "None")


def _payload_arguments(payload: type, notes: Mapping[str, str]) -> tuple[EventArgument, ...]:
    """The fields of a ``TypedDict``: types as annotated, descriptions from ``notes`` or from
    ``Annotated[type, "description"]`` (when the annotations can be resolved at run time)."""
    raw: dict[str, Any] = dict(getattr(payload, "__annotations__", {}))
    try:
        resolved = typing.get_type_hints(payload, include_extras=True)
    except Exception:  # names imported for type checkers only: keep the text as written
        resolved = {}
    optional: frozenset[str] = getattr(payload, "__optional_keys__", frozenset())
    arguments = []
    for name, written in raw.items():
        # A TypedDict of string annotations does not see NotRequired in them: read it here.
        said, annotation = _unwrap(written)
        hint = _bare(resolved.get(name, annotation))
        metadata = [each for each in getattr(hint, "__metadata__", ()) if isinstance(each, str)]
        # The annotation as written, unless only its resolved form is readable (Annotated).
        readable = isinstance(annotation, str) and "Annotated[" not in annotation
        arguments.append(EventArgument(name, _type_text(annotation if readable else hint),
                                       notes.get(name) or " ".join(metadata),
                                       name not in optional if said is None else said))
    return tuple(arguments)


def _check_names(signal: str, names: Iterable[str]) -> None:
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"signal {signal!r}: an argument name is a Python identifier "
                             f"(receivers take it as a keyword), not {name!r}")
        if name in RESERVED_ARGUMENTS:
            raise ValueError(f"signal {signal!r} cannot have an argument named {name!r}: "
                             "receivers get the sender as their first positional argument, "
                             "and predicates get sender and sender_name; rename it")


class OrderedSignal(NamedSignal):
    """A blinker signal whose receivers run in a documented, stable order.

    Receivers run by priority, highest first (``connect(..., priority=10)``,
    or ``@on(..., priority=10)``; the default is 0), then in the order they
    were first connected to the signal, whatever sender they were connected
    for. Connecting a receiver again keeps its place and sets its priority.

    Every triggerhooks signal is one, described: ``payload`` (a ``TypedDict``)
    or ``arguments`` (name -> description) give its keyword arguments,
    ``sender_kind`` who sends it, ``emitted_by`` and ``order`` (Markdown) what
    emits it and when. A described signal checks each send: a missing or
    unexpected argument is a ``TypeError`` before any receiver runs. An
    application declares its own with
    :func:`triggerhooks.events.declare_event`.

    ``send`` takes the sender by position or as ``sender=``, like
    ``send_event``; prefer ``send_event``, which also isolates receiver errors.
    """

    set_class = _OrderedSet  # type: ignore[assignment]

    def __init__(self, name: str, doc: str | None = None, *, payload: type | None = None,
                 sender_kind: SenderKind | None = None,
                 arguments: Mapping[str, str] | None = None, emitted_by: str = "",
                 order: str = "", declared_in: str | None = None) -> None:
        super().__init__(name, doc)
        self.sender_kind: SenderKind | None = sender_kind
        """``"manager"`` or ``"task"`` for triggerhooks' signals (``None``: any sender)."""
        self.declared_in = declared_in
        """The module that declared the signal (``None``: not declared, made directly)."""
        self.describe(payload=payload, arguments=arguments, emitted_by=emitted_by, order=order)
        self._rank: dict[Hashable, tuple[int, int]] = {}
        self._sequence = itertools.count()
        self._generations = itertools.count(1)
        self._generation = 0  # a new value at every change of the connections (count: atomic)
        self._ordered: dict[Hashable, tuple[int, tuple[Hashable, ...]]] = {}
        """Sender id -> (generation, the receiver ids in order): the order is computed once
        per change of the connections, not at every send."""

    def describe(self, *, payload: type | None = None, arguments: Mapping[str, str] | None = None,
                 emitted_by: str = "", order: str = "", doc: str | None = None) -> None:
        """Set what the signal passes and who emits it when (see the class docstring).

        With both ``payload`` and ``arguments``, ``arguments`` describes fields of the
        payload. An argument may not be named ``sender`` or ``sender_name``.
        """
        notes = dict(arguments or {})
        if payload is not None:
            described = _payload_arguments(payload, notes)
            unknown = sorted(set(notes) - {each.name for each in described})
            if unknown:
                raise ValueError(f"signal {self.name!r}: arguments {', '.join(unknown)} are "
                                 f"not fields of its payload {payload.__name__}")
        else:
            described = tuple(EventArgument(name, None, text) for name, text in notes.items())
        _check_names(self.name, [each.name for each in described])
        self.payload = payload
        """The ``TypedDict`` of the signal's keyword arguments (``None``: none given)."""
        self.arguments = described
        """Each keyword argument the signal passes, with its type and description."""
        self.emitted_by = emitted_by
        """What emits the signal (Markdown; ``""``: not said)."""
        self.order = order
        """When it is sent relative to other signals (Markdown; ``""``: not said)."""
        if doc is not None:
            self.__doc__ = doc
        self.described = payload is not None or arguments is not None
        """Whether the signal says what it passes (then each send is checked against it)."""
        self._fields = tuple(each.name for each in described)
        self._known = frozenset(self._fields)
        self._required = tuple(each.name for each in described if each.required)

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the signal's keyword arguments, in declaration order (``()`` if none)."""
        return self._fields

    def check_arguments(self, kwargs: Mapping[str, Any]) -> None:
        """Raise ``TypeError`` unless ``kwargs`` are the signal's arguments (if it says)."""
        if not self.described or kwargs.keys() == self._known:
            return
        missing = [name for name in self._required if name not in kwargs]
        unexpected = [name for name in kwargs if name not in self._known]
        if missing or unexpected:
            problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unexpected {', '.join(unexpected)}"] if unexpected else [])
            raise TypeError(f"signal {self.name} was sent with the wrong arguments ("
                            f"{'; '.join(problems)}): it passes "
                            f"{', '.join(self._fields) or 'no arguments'}")

    def send(self, sender: Any = NO_SENDER, /, *,
             _async_wrapper: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
             **kwargs: Any) -> list[tuple[Callable[..., Any], Any]]:
        """Blinker's send, taking the sender by position or as ``sender=`` (as Django's
        ``Signal.send`` does) and checking the arguments first."""
        sender = pop_sender(sender, kwargs, f"{self.name}.send")
        self.check_arguments(kwargs)
        return super().send(sender, _async_wrapper=_async_wrapper, **kwargs)

    def priority_of(self, receiver: Callable[..., Any]) -> int:
        """The priority ``receiver`` is connected with (0 when it is not connected)."""
        rank = self._rank.get(make_id(receiver))
        return -rank[0] if rank else 0

    def connect(self, receiver: F, sender: Any = ANY, weak: bool = True, *,
                priority: int = 0) -> F:
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"a receiver's priority is an int (higher runs first), not {priority!r}")
        receiver_id = make_id(receiver)
        rank = self._rank.get(receiver_id)
        order = rank[1] if rank is not None and receiver_id in self.receivers else next(
            self._sequence)
        self._rank[receiver_id] = (-priority, order)
        try:
            return super().connect(receiver, sender, weak)
        except BaseException:
            if receiver_id not in self.receivers:
                self._rank.pop(receiver_id, None)
            raise
        finally:
            self._generation = next(self._generations)

    def _disconnect(self, receiver_id: Hashable, sender_id: Hashable) -> None:
        super()._disconnect(receiver_id, sender_id)
        if receiver_id not in self.receivers:
            self._rank.pop(receiver_id, None)
        self._generation = next(self._generations)

    def _make_cleanup_sender(self, sender_id: Hashable) -> Callable[[weakref.ref[Any]], None]:
        cleanup = super()._make_cleanup_sender(sender_id)

        def cleanup_and_reorder(ref: weakref.ref[Any]) -> None:
            cleanup(ref)
            self._generation = next(self._generations)

        return cleanup_and_reorder

    def _clear_state(self) -> None:
        super()._clear_state()
        self._rank.clear()
        self._generation = next(self._generations)

    def _order(self, sender_id: Hashable) -> tuple[Hashable, ...]:
        """The ids of the receivers for ``sender_id`` (and for any sender), in order."""
        ids = {*self._by_sender.get(_ANY_ID, ())}
        if sender_id != _ANY_ID:
            ids.update(self._by_sender.get(sender_id, ()))
        rank = self._rank
        return tuple(sorted(ids, key=lambda each: rank.get(each, (0, -1))))

    def receivers_for(self, sender: Any) -> Generator[Callable[..., Any], None, None]:
        """Each receiver for ``sender`` (and for any sender), in order: priority, then
        connection. Weakly referenced receivers that are gone are disconnected and skipped."""
        if not self.receivers:
            return
        sender_id = make_id(sender)
        if sender_id not in self._by_sender:
            sender_id = _ANY_ID
        cached = self._ordered.get(sender_id)
        if cached is not None and cached[0] == self._generation:
            ids = cached[1]
        else:
            generation = self._generation
            ids = self._order(sender_id)
            self._ordered[sender_id] = (generation, ids)
        for receiver_id in ids:
            receiver = self.receivers.get(receiver_id)
            if receiver is None:
                continue
            if isinstance(receiver, weakref.ref):
                strong = receiver()
                if strong is None:
                    self._disconnect(receiver_id, _ANY_ID)
                    continue
                yield strong
            else:
                yield receiver


class _Namespace(Namespace):
    """triggerhooks' signals; once they are defined, it makes no new ones."""

    frozen = False

    def signal(self, name: str, doc: str | None = None) -> NamedSignal:
        if name not in self:
            if self.frozen:
                close = difflib.get_close_matches(name, list(self), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise LookupError(
                    f"triggerhooks has no signal {name!r} ({hint}its signals: "
                    f"{', '.join(self)}); declare your application's own events with "
                    "triggerhooks.events.declare_event")
            self[name] = OrderedSignal(name, doc)
        return self[name]

    def define(self, name: str, payload: type, sender_kind: SenderKind, *, doc: str,
               emitted_by: str, order: str,
               arguments: Mapping[str, str] | None = None) -> OrderedSignal:
        """Make one of triggerhooks' signals, with the metadata of its row in the events table."""
        signal = OrderedSignal(name, doc, payload=payload, sender_kind=sender_kind,
                               arguments=arguments, emitted_by=emitted_by, order=order,
                               declared_in=__name__)
        self[name] = signal
        return signal


namespace = _Namespace()

# Each signal with its row of the events table: what emits it, notes on its arguments
# (Markdown), when it is sent relative to the others (docs/events.md shows the same table).
_VETO = "a raising `raise_exception` receiver vetoes"

pre_fire = namespace.define(
    "pre_fire", PreFire, "manager",
    doc="Before a trigger (or a cascade) is recorded; sender: manager class; trigger_name, "
        "trigger_kwargs. A raise_exception receiver that raises vetoes the fire.",
    emitted_by="`fire()`; a task instance finishing (its cascade fires the task's name); "
               "`skip_failed_instance(cascade=True)`; `update_instance_status(cascade=True)`; "
               "finalization (`sessionFinalized`)",
    arguments={"trigger_kwargs": "as they are stored: JSON types"},
    order=f"first, before anything is stored; {_VETO} the fire")
post_fire = namespace.define(
    "post_fire", PostFire, "manager",
    doc="After a firing is stored; sender: manager class; trigger_name, trigger_kwargs, "
        "tasks_scheduled (instances it scheduled).",
    emitted_by="same as `pre_fire`",
    arguments={"tasks_scheduled": "the instances this fire scheduled"},
    order="after the instance signals of the fire")
task_scheduled = namespace.define(
    "task_scheduled", TaskScheduled, "task",
    doc="An instance was stored as scheduled, before it is handed to its runner; sender: task "
        "class; task_instance.",
    emitted_by="a fire that makes an instance ready; a replay or retry (the copy); "
               '`update_instance_status(…, "scheduled")`',
    order="after the change is stored, before `post_fire` / `post_replay`, before the "
          "instance is handed to its runner")
task_started = namespace.define(
    "task_started", TaskStarted, "task",
    doc="A runner claimed an instance (now running), before its task runs; sender: task class; "
        "task_instance.",
    emitted_by="a runner claiming a scheduled instance (it is now `running`); "
               '`update_instance_status(…, "running")`',
    order="before the task's code runs")
task_completed = namespace.define(
    "task_completed", TaskCompleted, "task",
    doc="An instance finished; sender: task class; task_instance, result (its cascade kwargs).",
    emitted_by='a task returning; `update_instance_status(…, "finished")`',
    arguments={"result": "the cascade kwargs"},
    order="after the cascade's `pre_fire`, before its `post_fire`")
task_failed = namespace.define(
    "task_failed", TaskFailed, "task",
    doc="An instance failed; sender: task class; task_instance, exception (None when set by "
        "hand).",
    emitted_by='a task raising (a retry too); `update_instance_status(…, "failed")`; a leased '
               "instance whose workers kept dying (`WorkerLostError`)",
    arguments={"exception": "`None` when set by hand or for a lost worker"},
    order="after the failure is stored")
instance_abandoned = namespace.define(
    "instance_abandoned", InstanceAbandoned, "task",
    doc="An unstarted instance was abandoned (its unless triggers fired); sender: task class; "
        "task_instance.",
    emitted_by="the fire (or configuration) that completes a task's `unless`; "
               '`update_instance_status(…, "abandoned")`',
    order="with the other instance signals of that change")
pre_replay = namespace.define(
    "pre_replay", PreReplay, "task",
    doc="Before replay_failed_instance replays a failed instance; sender: task class; "
        "task_instance. A raise_exception receiver that raises vetoes it.",
    emitted_by="`replay_failed_instance()`",
    arguments={"task_instance": "the failed instance"},
    order=f"first, before anything is stored; {_VETO} the replay")
post_replay = namespace.define(
    "post_replay", PostReplay, "task",
    doc="After a replay copy is stored (manual replay or retry); sender: task class; "
        "task_instance (the copy), parent (the failed instance's name).",
    emitted_by="`replay_failed_instance()`; a task's `retry()`",
    arguments={"task_instance": "the new copy", "parent": "the failed instance's name"},
    order="after the copy's `task_scheduled`")
pre_skip = namespace.define(
    "pre_skip", PreSkip, "task",
    doc="Before a failed instance is skipped; sender: task class; task_instance, cascade. A "
        "raise_exception receiver that raises vetoes it.",
    emitted_by="`skip_failed_instance()`",
    order=f"first (before the cascade's `pre_fire`); {_VETO} the skip")
post_skip = namespace.define(
    "post_skip", PostSkip, "task",
    doc="After a skip (and its cascade) is stored; sender: task class; task_instance, cascade.",
    emitted_by="`skip_failed_instance()`",
    arguments={"task_instance": "now `skipped`"},
    order="after the cascade's `post_fire`")
session_finalized = namespace.define(
    "session_finalized", SessionFinalized, "manager",
    doc="Once per session, after the sessionFinalized trigger is stored; sender: manager class.",
    emitted_by="the (only) stored fire of `sessionFinalized`",
    order="after that fire's `post_fire`")
configuration_updated = namespace.define(
    "configuration_updated", ConfigurationUpdated, "manager",
    doc="After update_configuration stored a configuration; sender: manager class; tasks "
        "(name -> TaskConfig of the tasks given).",
    emitted_by="`update_configuration()`",
    arguments={"tasks": "name → `TaskConfig` of the tasks given"},
    order="after the instance signals of the change")
namespace.frozen = True
