"""Trigger tasks: the code an instance runs, and the context it runs in."""

from __future__ import annotations

import inspect
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from pydantic import BaseModel, ValidationError

from .exceptions import (
    InvalidKwargsError,
    InvalidStatusError,
    MaxRetriesExceeded,
    Problem,
    exception_text,
    with_context,
)
from .models import TaskInstance, TaskStatus, parse_status
from .registries import trigger_tasks
from .serialization import JsonDict

if TYPE_CHECKING:
    from .manager import TriggerManager

__all__ = [
    "Retry",
    "StatusChange",
    "TaskContext",
    "TaskLogger",
    "TriggerTask",
    "trigger_task",
    "trigger_tasks",
]

M = TypeVar("M", bound=BaseModel)
FuncT = TypeVar("FuncT", bound=Callable[..., Any])

class Retry(Exception):
    """Raised by :meth:`TriggerTask.retry`: fail this instance and replay it."""

    def __init__(self, exc: BaseException | None = None, cooldown: float = 0.0,
                 replacement_kwargs: Mapping[str, Any] | None = None) -> None:
        self.exc = exc
        self.cooldown = float(cooldown)
        if not self.cooldown <= threading.TIMEOUT_MAX:  # NaN and infinity included
            raise ValueError(f"a retry's cooldown is a number of seconds up to "
                             f"{threading.TIMEOUT_MAX:g} (threading.TIMEOUT_MAX, the longest "
                             f"wait a runner can make), not {cooldown!r}")
        self.replacement_kwargs = dict(replacement_kwargs) if replacement_kwargs is not None else None
        super().__init__(f"retry in {self.cooldown:g}s" + (f" after {exc!r}" if exc else ""))


class StatusChange(Exception):
    """Return or raise this from a task to end its instance in a status of its choosing."""

    def __init__(self, status: TaskStatus | str, metadata: Mapping[str, Any] | None = None, *,
                 cascade: bool = False, cascade_kwargs: Mapping[str, Any] | None = None) -> None:
        self.status = parse_status(status)
        if self.status in (TaskStatus.UNSTARTED, TaskStatus.RUNNING, TaskStatus.REPLAYED):
            raise InvalidStatusError(f"a task cannot end in status {self.status.value!r}; "
                                     "it may end finished, failed, skipped, abandoned or "
                                     "scheduled")
        self.metadata = dict(metadata or {})
        self.cascade = cascade
        self.cascade_kwargs = dict(cascade_kwargs or {})
        super().__init__(f"status change to {self.status.value}")


_MAX_LOG_LEVEL = 2**63 - 1
"""The highest ``log_level`` an instance stores: higher levels (Python's have no bound) count
as this one."""


class TaskLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that attaches ``context`` to every record and tracks the max level emitted.

    Every record gets a ``context`` attribute: the logger context's mapping
    with the message's own ``extra={"context": {...}}`` on top (``extras=``,
    as in the seeds, works too). The level of every call counts towards the
    instance's ``log_level``, whether or not the logging configuration lets
    the record through.
    """

    def __init__(self, logger: logging.Logger, context: Mapping[str, Any],
                 task_context: TaskContext) -> None:
        super().__init__(logger, {})
        self.context = dict(context)
        self.task_context = task_context

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(kwargs.pop("extras", None) or {})
        extra.update(kwargs.get("extra") or {})
        extra["context"] = {**self.context, **(extra.get("context") or {})}
        kwargs["extra"] = extra
        return msg, kwargs

    def _emit(self, level: int, msg: object, args: tuple[Any, ...],
              kwargs: MutableMapping[str, Any]) -> None:
        self.task_context.record_level(level)
        if self.isEnabledFor(level):
            msg, processed = self.process(msg, kwargs)
            # Point the record at the caller, past this method and the public one.
            processed["stacklevel"] = processed.get("stacklevel", 1) + 2
            self.logger.log(level, msg, *args, **processed)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit(level, msg, args, kwargs)

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit(logging.DEBUG, msg, args, kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit(logging.INFO, msg, args, kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit(logging.WARNING, msg, args, kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit(logging.ERROR, msg, args, kwargs)

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        kwargs["exc_info"] = exc_info
        self._emit(logging.ERROR, msg, args, kwargs)

    def critical(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._emit(logging.CRITICAL, msg, args, kwargs)


class TaskContext:
    """What a running task instance sees: its manager, instance and trigger kwargs."""

    def __init__(self, manager: TriggerManager, task_instance: TaskInstance,
                 task: TriggerTask) -> None:
        self.manager = manager
        self.task_instance = task_instance
        self.task = task
        self.log_level = logging.NOTSET
        self.logged_exceptions: set[int] = set()

    @property
    def trigger_kwargs(self) -> JsonDict:
        """Trigger name -> kwargs of that firing (``withParams`` merged under them)."""
        return self.task_instance.kwargs

    @property
    def session_uid(self) -> str:
        return self.manager.storage.uid

    def record_level(self, level: int) -> None:
        """Count ``level`` towards the instance's ``log_level`` (the max level logged).

        Only an int counts (as for ``logging``, which refuses other levels), stored as a
        plain int no larger than a 64-bit one, so that any level a task logs at can be
        stored with its instance."""
        if isinstance(level, int) and level > self.log_level:
            self.log_level = min(int(level), _MAX_LOG_LEVEL)

    def retry(self, exc: BaseException | None = None, cooldown: float = 0.0,
              replacement_kwargs: Mapping[str, Any] | None = None) -> Retry:
        """``self.retry(...)`` of the running task, for function tasks."""
        return self.task.retry(exc, cooldown, replacement_kwargs)

    @contextmanager
    def get_logger_context(self, context: Mapping[str, Any] | None = None,
                           logger: logging.Logger | None = None) -> Iterator[TaskLogger]:
        """A logger whose records carry ``context``; an exception raised inside is logged
        with its ``with_context`` context, then re-raised."""
        base = {"session": self.session_uid, "taskInstance": self.task_instance.name,
                **(context or {})}
        adapter = TaskLogger(logger or logging.getLogger(type(self.task).__module__), base, self)
        try:
            yield adapter
        except Exception as exc:
            if not isinstance(exc, (Retry, StatusChange)) and id(exc) not in self.logged_exceptions:
                self.logged_exceptions.add(id(exc))
                adapter.exception("%s: %s", type(exc).__name__, exception_text(exc),
                                  extra={"context": getattr(exc, "context", None) or {}})
            raise

    def validate_kwargs(self, model: type[M]) -> M:
        """Validate the trigger kwargs against a pydantic model whose fields are trigger names.

        Raises :class:`InvalidKwargsError` listing every problem.
        """
        try:
            return model.model_validate(self.trigger_kwargs)
        except ValidationError as exc:
            problems = [Problem(".".join(map(str, error["loc"])), error["msg"])
                        for error in exc.errors()]
            raise InvalidKwargsError(self.task_instance.name, problems) from None


class TriggerTask(ABC):
    """Base class of trigger tasks. Subclasses implement :meth:`_run` and register on definition.

    ``name`` defaults to the module and qualified name; configurations refer
    to a task by it (``"run": "app.tasks.ImportSubject"``).
    """

    name: ClassVar[str]
    max_retries: ClassVar[int] = 3

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = f"{cls.__module__}.{cls.__qualname__}"
        retries = cls.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            # Checked here, not at the first retry(), where it failed the instance instead.
            raise TypeError(f"max_retries of task {cls.name!r} is how many times it may retry: "
                            f"an int from 0, not {retries!r}")
        if register and not inspect.isabstract(cls):
            trigger_tasks.register(cls)

    def __init__(self) -> None:
        self.context: TaskContext | None = None

    @abstractmethod
    def _run(self, context: TaskContext) -> Mapping[str, Any] | StatusChange | None:
        """Do the work; return the cascade kwargs (a JSON-serializable mapping)."""

    def run(self, context: TaskContext) -> Mapping[str, Any] | StatusChange | None:
        self.context = context
        try:
            return self._run(context)
        finally:
            self.context = None

    def retry(self, exc: BaseException | None = None, cooldown: float = 0.0,
              replacement_kwargs: Mapping[str, Any] | None = None) -> Retry:
        """Fail this instance and replay it after ``cooldown`` seconds; always raises.

        Raises :class:`Retry`, or :class:`MaxRetriesExceeded` once the instance
        was retried ``max_retries`` times. Usable as ``raise self.retry(...)``.
        """
        instance = self.context.task_instance if self.context else None
        retries = int(instance.metadata.get("retries", 0)) if instance else 0
        if retries >= self.max_retries:
            error = MaxRetriesExceeded(
                f"{instance.name if instance else type(self).name} gave up after "
                f"{retries} retries" + (f": {type(exc).__name__}: {exc}" if exc else ""))
            context = getattr(exc, "context", None)
            if isinstance(context, Mapping):
                with_context(error, context)
            raise error from exc
        raise Retry(exc, cooldown, replacement_kwargs)


class _FunctionTask(TriggerTask, register=False):
    func: ClassVar[Callable[[TaskContext], Any]]

    def _run(self, context: TaskContext) -> Any:
        return type(self).func(context)


@overload
def trigger_task(func: FuncT, /) -> FuncT: ...


@overload
def trigger_task(*, name: str | None = None, max_retries: int = 3) -> Callable[[FuncT], FuncT]: ...


def trigger_task(func: Callable[..., Any] | None = None, /, *, name: str | None = None,
                 max_retries: int = 3) -> Any:
    """Register a plain function ``f(context) -> mapping`` as a trigger task.

    The function is returned unchanged, with ``__trigger_task__`` set to its
    generated task class (use the function as a signal ``sender``).
    """

    def decorate(fn: FuncT) -> FuncT:
        task_name = name or f"{fn.__module__}.{fn.__qualname__}"
        cls = type(fn.__name__, (_FunctionTask,), {
            "name": task_name, "max_retries": max_retries, "func": staticmethod(fn),
            "__module__": fn.__module__, "__qualname__": fn.__qualname__, "__doc__": fn.__doc__,
        })
        trigger_tasks.register(cls)
        fn.__trigger_task__ = cls  # type: ignore[attr-defined]
        return fn

    return decorate(func) if func is not None else decorate
