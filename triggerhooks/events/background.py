"""Background receivers: a receiver call as JSON, handed to the session's task runner.

``@on(signal, background=True)`` receivers are not called by the sender: each
call becomes a :class:`BackgroundCall` that a runner makes later or in another
process (a thread, a Celery worker), where the receiver is found again by its
dotted name and the sender through the registries.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from blinker import Signal

from ..models import TaskConfig, TaskInstance
from ..registries import trigger_managers, trigger_tasks
from ..serialization import JsonDict, dotted_name, dumps, loads
from ..task import TriggerTask
from .receivers import background_receivers

if TYPE_CHECKING:
    from ..manager import TriggerManager

__all__ = ["BackgroundCall", "hand_off"]


def hand_off(signal: Signal, receiver: Callable[..., Any], sender: Any,
              kwargs: dict[str, Any]) -> None:
    """Filter a background receiver's call here, then give it to the session's runner."""
    accepts = getattr(receiver, "__th_accepts__", None)
    if accepts is not None and not accepts(sender, kwargs):
        return
    manager = kwargs.get("manager")
    if manager is None:
        raise TypeError(f"background receiver {dotted_name(receiver)} needs a signal that passes "
                        "manager=... (its runner is the manager's task runner)")
    call = BackgroundCall.build(signal, receiver, sender, kwargs)
    manager.task_runner().schedule_receiver(manager, call)


def _encode(name: str, value: Any) -> tuple[Any, str | None]:
    """A signal argument as JSON, with the kind of object it stands for."""
    if isinstance(value, TaskInstance):
        return {"name": value.name, **value.to_json()}, "instance"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, TaskInstance) for v in value):
        return [{"name": v.name, **v.to_json()} for v in value], "instances"
    if (isinstance(value, Mapping) and value
            and all(isinstance(v, TaskConfig) for v in value.values())):
        return {key: config.to_json() for key, config in value.items()}, "tasks"
    if isinstance(value, BaseException):
        return None, "exception"
    return value, None


def _decode(value: Any, kind: str | None) -> Any:
    if kind == "instance":
        return TaskInstance.from_json(value["name"], value)
    if kind == "instances":
        return [TaskInstance.from_json(v["name"], v) for v in value]
    if kind == "tasks":
        return {key: TaskConfig.from_json(key, data) for key, data in value.items()}
    return value


def _encode_sender(sender: Any) -> JsonDict | None:
    if sender is None:
        return None
    if isinstance(sender, type) and issubclass(sender, TriggerTask):
        return {"task": sender.name}
    key = trigger_managers.key_of(sender) if isinstance(sender, type) else None
    if key is not None:
        return {"manager": str(key)}
    raise TypeError(f"a background receiver's sender must be a task class, a registered manager "
                    f"class or None, not {sender!r}: a worker finds it through the registries "
                    "(register a manager class with trigger_managers.register('some-key'))")


def _decode_sender(data: JsonDict | None) -> Any:
    if data is None:
        return None
    if "task" in data:
        return trigger_tasks.get_class(data["task"])
    return trigger_managers.get_class(data["manager"])


def _find_receiver(module: str, qualname: str) -> Callable[..., Any]:
    """Import a background receiver by name; only functions connected as background count."""
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is None or not any(found is target for found in background_receivers.values()):
        raise LookupError(f"{module}.{qualname} is not a background receiver (connected with "
                          "@on(..., background=True) when its module is imported)")
    unfiltered: Callable[..., Any] = getattr(target, "__th_unfiltered__", target)
    return unfiltered


@dataclass(frozen=True)
class BackgroundCall:
    """One call of a background receiver, as JSON, for a runner to make later or elsewhere.

    The receiver gets the signal's arguments rebuilt from JSON: ``manager`` is
    a manager of the same session, ``sender`` the task or manager class
    (through the registries), ``task_instance`` / ``tasks_scheduled`` are the
    instances as they were when the signal was sent, ``tasks`` maps names to
    ``TaskConfig``; ``exception`` is ``None`` (the failure is in
    ``task_instance.metadata``). Any other argument must be JSON-serializable.
    """

    signal: str
    module: str
    qualname: str
    sender: JsonDict | None
    kwargs: JsonDict
    kinds: dict[str, str]
    live: tuple[Callable[..., Any], Any] | None = field(default=None, compare=False, repr=False)
    """The receiver and sender themselves, for runners in the sending process."""

    @classmethod
    def build(cls, signal: Signal, receiver: Callable[..., Any], sender: Any,
              kwargs: Mapping[str, Any]) -> BackgroundCall:
        target = inspect.unwrap(receiver)
        encoded: JsonDict = {}
        kinds: dict[str, str] = {}
        for key, value in kwargs.items():
            if key == "manager":
                continue
            encoded[key], kind = _encode(key, value)
            if kind is not None:
                kinds[key] = kind
        raw = dumps(encoded, f"arguments of background receiver {dotted_name(target)}")
        unfiltered = getattr(receiver, "__th_unfiltered__", receiver)
        return cls(getattr(signal, "name", repr(signal)), target.__module__, target.__qualname__,
                   None, loads(raw), kinds, (unfiltered, sender))

    @property
    def receiver_name(self) -> str:
        return f"{self.module}.{self.qualname}"

    def to_json(self) -> JsonDict:
        """The call as JSON, for another process (the sender named through the registries)."""
        sender = self.sender if self.live is None else _encode_sender(self.live[1])
        return {"signal": self.signal, "receiver": [self.module, self.qualname],
                "sender": sender, "kwargs": self.kwargs, "kinds": self.kinds}

    @classmethod
    def from_json(cls, data: JsonDict) -> BackgroundCall:
        module, qualname = data["receiver"]
        return cls(data["signal"], module, qualname, data["sender"], data["kwargs"],
                   data["kinds"])

    def run(self, manager: TriggerManager) -> Any:
        """Call the receiver with the rebuilt arguments and ``manager``; returns its result."""
        if self.live is not None:
            receiver, sender = self.live
        else:
            receiver = _find_receiver(self.module, self.qualname)
            sender = _decode_sender(self.sender)
        kwargs = {key: _decode(value, self.kinds.get(key)) for key, value in self.kwargs.items()}
        return receiver(sender, manager=manager, **kwargs)
