"""Background receivers: a receiver call as JSON, handed to the session's task runner.

``@on(signal, background=True)`` receivers are not called by the sender: each
call becomes a :class:`BackgroundCall` that a runner makes later or in another
process (a thread, a Celery worker), where the receiver is found again by its
dotted name and the sender through the registries.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from blinker import Signal

from ..exceptions import RunnerError, UnknownReceiverError
from ..models import TaskConfig, TaskInstance
from ..registries import trigger_managers, trigger_tasks
from ..serialization import JsonDict, dotted_name, dumps, loads, safe_text
from ..task import TriggerTask
from .modules import RECEIVER_MODULES_ENV, load_receiver_modules
from .receivers import background_receivers

if TYPE_CHECKING:
    from ..manager import TriggerManager

__all__ = ["BackgroundCall", "hand_off"]

log = logging.getLogger(__name__)


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


_KINDS = frozenset({"instance", "instances", "tasks", "exception"})


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


def _find_receiver(signal: str, module: str, qualname: str) -> Callable[..., Any]:
    """The background receiver of ``signal`` named ``module.qualname``, among those this
    process registered: connected with ``@on(..., background=True)`` in a module it imported,
    or in a configured receiver module (imported first, once per process). Nothing is
    imported for a name a call gives: a call naming anything else is refused and logged."""
    load_receiver_modules()
    for (each, _), receiver in list(background_receivers.items()):
        target = inspect.unwrap(receiver)
        if (getattr(target, "__module__", None) == module
                and getattr(target, "__qualname__", None) == qualname
                and getattr(each, "name", repr(each)) == signal):
            unfiltered: Callable[..., Any] = getattr(receiver, "__th_unfiltered__", receiver)
            return unfiltered
    name = safe_text(f"{module}.{qualname}")[:300]
    log.warning("refused a call of %s for %s: not a background receiver of this process "
                "(nothing was imported for it)", name, safe_text(signal)[:100])
    raise UnknownReceiverError(
        f"{name} is not a background receiver of signal {safe_text(signal)[:100]!r} in this "
        "process: only functions connected with @on(..., background=True) in a module already "
        f"imported, or in a receiver module (${RECEIVER_MODULES_ENV}, plugins), can be called "
        "by name; nothing was imported for it")


def _malformed(why: str) -> RunnerError:
    return RunnerError(f"malformed background receiver call: {why}")


def _check_document(data: Any) -> None:
    """Refuse a call document (from a broker) that is not shaped as :meth:`to_json` makes."""
    if not isinstance(data, dict):
        raise _malformed(f"a JSON object expected, not {type(data).__name__}")
    receiver = data.get("receiver")
    if not (isinstance(receiver, list) and len(receiver) == 2
            and all(isinstance(part, str) and part for part in receiver)):
        raise _malformed("'receiver' must be [module, qualified name]")
    if not isinstance(data.get("signal"), str):
        raise _malformed("'signal' must be a string")
    sender = data.get("sender")
    if sender is not None and not (isinstance(sender, dict) and len(sender) == 1
                                   and isinstance(sender.get("task", sender.get("manager")), str)):
        raise _malformed("'sender' must be null, {\"task\": name} or {\"manager\": key}")
    kinds = data.get("kinds")
    if not isinstance(data.get("kwargs"), dict) or not isinstance(kinds, dict) or not all(
            isinstance(kind, str) and kind in _KINDS for kind in kinds.values()):
        raise _malformed("'kwargs' must be an object, 'kinds' an object of argument kinds")
    if "manager" in data["kwargs"] or "sender" in data["kwargs"]:
        raise _malformed("'kwargs' cannot hold 'manager' or 'sender' (the worker passes them)")


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
        """The call a :meth:`to_json` document describes (a message from a broker: checked
        here, its receiver when it runs; :class:`RunnerError` for a malformed one)."""
        _check_document(data)
        module, qualname = data["receiver"]
        return cls(data["signal"], module, qualname, data["sender"], data["kwargs"],
                   data["kinds"])

    def run(self, manager: TriggerManager) -> Any:
        """Call the receiver with the rebuilt arguments and ``manager``; returns its result."""
        if self.live is not None:
            receiver, sender = self.live
        else:
            receiver = _find_receiver(self.signal, self.module, self.qualname)
            sender = _decode_sender(self.sender)
        try:
            kwargs = {key: _decode(value, self.kinds.get(key))
                      for key, value in self.kwargs.items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _malformed(f"an argument cannot be rebuilt: {type(exc).__name__}: "
                             f"{safe_text(str(exc))[:200]}") from None
        return receiver(sender, manager=manager, **kwargs)
