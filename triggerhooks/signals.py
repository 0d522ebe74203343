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
See ``docs/events.md`` for who sends what, and in which order.
"""

from __future__ import annotations

import difflib
import itertools
import weakref
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator, MutableSet
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

from blinker import ANY, NamedSignal, Namespace
from blinker._utilities import make_id
from blinker.base import ANY_ID as _ANY_ID

from .serialization import JsonDict

if TYPE_CHECKING:  # type-only: the payloads name modules this one may not import
    from .manager import TriggerManager
    from .models import TaskConfig, TaskInstance

__all__ = [
    "ConfigurationUpdated",
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




class OrderedSignal(NamedSignal):
    """A blinker signal whose receivers run in a documented, stable order.

    Receivers run by priority, highest first (``connect(..., priority=10)``,
    or ``@on(..., priority=10)``; the default is 0), then in the order they
    were first connected to the signal, whatever sender they were connected
    for. Connecting a receiver again keeps its place and sets its priority.

    Every triggerhooks signal is one; ``payload`` (a ``TypedDict``) describes
    its keyword arguments and ``sender_kind`` who sends it. An application
    may make its own (``OrderedSignal("order_shipped", payload=OrderShipped)``)
    to get the same order and checks for its events.
    """

    set_class = _OrderedSet  # type: ignore[assignment]

    def __init__(self, name: str, doc: str | None = None, *, payload: type | None = None,
                 sender_kind: SenderKind | None = None) -> None:
        super().__init__(name, doc)
        self.payload = payload
        """The ``TypedDict`` of the signal's keyword arguments (``None``: not described)."""
        self.sender_kind: SenderKind | None = sender_kind
        """``"manager"`` or ``"task"`` for triggerhooks' signals (``None``: any sender)."""
        self._rank: dict[Hashable, tuple[int, int]] = {}
        self._sequence = itertools.count()
        self._generations = itertools.count(1)
        self._generation = 0  # a new value at every change of the connections (count: atomic)
        self._ordered: dict[Hashable, tuple[int, tuple[Hashable, ...]]] = {}
        """Sender id -> (generation, the receiver ids in order): the order is computed once
        per change of the connections, not at every send."""

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the payload's keyword arguments, in declaration order (``()`` if none)."""
        return tuple(getattr(self.payload, "__annotations__", {})) if self.payload else ()

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
                    f"{', '.join(self)}); for your application's own events make an "
                    "OrderedSignal (or any blinker signal) of your own")
            self[name] = OrderedSignal(name, doc)
        return self[name]

    def define(self, name: str, payload: type, sender_kind: SenderKind, doc: str) -> OrderedSignal:
        signal = OrderedSignal(name, doc, payload=payload, sender_kind=sender_kind)
        self[name] = signal
        return signal


namespace = _Namespace()

# fmt: off
pre_fire = namespace.define("pre_fire", PreFire, "manager", doc="Before a trigger (or a cascade) is recorded; sender: manager class; trigger_name, trigger_kwargs. A raise_exception receiver that raises vetoes the fire.")  # noqa: E501
post_fire = namespace.define("post_fire", PostFire, "manager", doc="After a firing is stored; sender: manager class; trigger_name, trigger_kwargs, tasks_scheduled (instances it scheduled).")  # noqa: E501
task_scheduled = namespace.define("task_scheduled", TaskScheduled, "task", doc="An instance was stored as scheduled, before it is handed to its runner; sender: task class; task_instance.")  # noqa: E501
task_started = namespace.define("task_started", TaskStarted, "task", doc="A runner claimed an instance (now running), before its task runs; sender: task class; task_instance.")  # noqa: E501
task_completed = namespace.define("task_completed", TaskCompleted, "task", doc="An instance finished; sender: task class; task_instance, result (its cascade kwargs).")  # noqa: E501
task_failed = namespace.define("task_failed", TaskFailed, "task", doc="An instance failed; sender: task class; task_instance, exception (None when set by hand).")  # noqa: E501
instance_abandoned = namespace.define("instance_abandoned", InstanceAbandoned, "task", doc="An unstarted instance was abandoned (its unless triggers fired); sender: task class; task_instance.")  # noqa: E501
pre_replay = namespace.define("pre_replay", PreReplay, "task", doc="Before replay_failed_instance replays a failed instance; sender: task class; task_instance. A raise_exception receiver that raises vetoes it.")  # noqa: E501
post_replay = namespace.define("post_replay", PostReplay, "task", doc="After a replay copy is stored (manual replay or retry); sender: task class; task_instance (the copy), parent (the failed instance's name).")  # noqa: E501
pre_skip = namespace.define("pre_skip", PreSkip, "task", doc="Before a failed instance is skipped; sender: task class; task_instance, cascade. A raise_exception receiver that raises vetoes it.")  # noqa: E501
post_skip = namespace.define("post_skip", PostSkip, "task", doc="After a skip (and its cascade) is stored; sender: task class; task_instance, cascade.")  # noqa: E501
session_finalized = namespace.define("session_finalized", SessionFinalized, "manager", doc="Once per session, after the sessionFinalized trigger is stored; sender: manager class.")  # noqa: E501
configuration_updated = namespace.define("configuration_updated", ConfigurationUpdated, "manager", doc="After update_configuration stored a configuration; sender: manager class; tasks (name -> TaskConfig of the tasks given).")  # noqa: E501
# fmt: on
namespace.frozen = True
