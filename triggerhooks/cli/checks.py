"""The checks of the commands that run tasks (``fire``, ``replay``, ``skip --cascade``), so
that the command line never reports success for work that failed to start.

Before: every ``run`` and ``using`` name of the session's tasks must be registered
(:func:`check_registered`); otherwise nothing is fired and the command exits 1, naming
them. After: every instance the command scheduled, cascades included, is looked up
(:func:`watching`, :func:`report_outcome`); one that ended ``failed`` is printed with its
exception and the command exits :data:`EXIT_TASK_FAILED`, while one still waiting is
named with the runner it was handed to. The two errors are click exceptions, as the
command line's own ``UserError``: exit statuses, not part of the Python API.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from ..manager import TriggerManager
from ..models import TaskConfig, TaskInstance, TaskStatus
from ..registries import failed_plugins_hint
from ..runners import task_runners
from ..serialization import JsonDict, safe_text
from ..signals import task_scheduled
from ..storages import StorageBackend
from ..task import trigger_tasks
from ..testing.signals import connected

__all__ = [
    "EXIT_NOT_REGISTERED",
    "EXIT_TASK_FAILED",
    "Outcome",
    "Unregistered",
    "check_registered",
    "failure_reason",
    "report_outcome",
    "unregistered_names",
    "watching",
]

EXIT_NOT_REGISTERED = 1
"""Exit status when a session needs names that are not registered (a mistake, as elsewhere)."""
EXIT_TASK_FAILED = 3
"""Exit status when the change was stored but a task it ran failed: apart from 1 (nothing
was done), so that a script does not repeat a firing that was stored."""

REASON_LIMIT = 300
"""The longest exception message printed for a failed instance, in characters."""


# -- before: is everything the session runs registered? -----------------------------------------

@dataclass(frozen=True)
class Unregistered:
    """A name a task of the session uses that no registry knows."""

    task: str
    directive: str
    """``run`` (a trigger task) or ``using`` (a task runner)."""
    name: str

    def __str__(self) -> str:
        kind = "trigger task" if self.directive == "run" else "task runner"
        return f"{self.task}.{self.directive}: unknown {kind} {self.name!r}"


def unregistered_names(storage: StorageBackend) -> list[Unregistered]:
    """Every ``run`` of the session's tasks that names no registered trigger task, and every
    ``using`` that names no registered task runner: all configured tasks, not only those a
    firing reaches, since any of them may run later in the same command (a cascade)."""
    found: list[Unregistered] = []
    for name, config in storage.tasks.items():
        if config.run not in trigger_tasks:
            found.append(Unregistered(name, "run", config.run))
        if config.using is not None and config.using not in task_runners:
            found.append(Unregistered(name, "using", config.using))
    return found


class NotRegisteredError(click.ClickException):
    """The session needs names that are not registered: printed with a line per name and a
    hint, exit status :data:`EXIT_NOT_REGISTERED`."""

    exit_code = EXIT_NOT_REGISTERED

    def __init__(self, session: str, missing: list[Unregistered], undone: str,
                 import_env: str) -> None:
        names = sorted({each.name for each in missing})
        count = len(names)
        super().__init__(f"session {session!r} needs {count} name{'s' * (count != 1)} that "
                         f"{'are' if count != 1 else 'is'} not registered: {', '.join(names)}; "
                         f"nothing was {undone}")
        self.missing = missing
        self.import_env = import_env

    def show(self, file: Any = None) -> None:
        for each in self.missing:
            click.echo(f"  {each}", err=True)
        click.echo("hint: register them before the command runs: --import the modules that "
                   f"define them (or name them in ${self.import_env}), or install the plugin "
                   "that registers them", err=True)
        failed = failed_plugins_hint()
        if failed:
            click.echo(f"hint: {failed}", err=True)
        click.echo(f"error: {self.format_message()}", err=True)


def check_registered(storage: StorageBackend, undone: str, import_env: str) -> None:
    """Raise :class:`NotRegisteredError` (``nothing was <undone>``) if any task of the
    session names a trigger task or runner that is not registered."""
    missing = unregistered_names(storage)
    if missing:
        raise NotRegisteredError(storage.uid, missing, undone, import_env)


# -- after: how did what the command scheduled end? ---------------------------------------------

@dataclass
class Outcome:
    """The instances a command scheduled, in the order it scheduled them (any thread, any
    session a receiver fired into), each with the manager that scheduled it."""

    scheduled: dict[tuple[str, str], TriggerManager] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, sender: Any, *, manager: TriggerManager, task_instance: TaskInstance,
                **kwargs: Any) -> None:
        with self.lock:
            self.scheduled.setdefault((manager.storage.uid, task_instance.name), manager)

    def instances(self) -> Iterator[tuple[TriggerManager, TaskInstance]]:
        """Each scheduled instance as stored now (one read per session)."""
        by_session: dict[str, tuple[TriggerManager, list[str]]] = {}
        for (uid, name), manager in self.scheduled.items():
            by_session.setdefault(uid, (manager, []))[1].append(name)
        for manager, names in by_session.values():
            stored = manager.storage.instances
            for name in names:
                if name in stored:
                    yield manager, stored[name]


@contextmanager
def watching() -> Iterator[Outcome]:
    """Record every instance scheduled while the block runs (wrap the block that waits for
    task threads, so that their cascades are recorded too)."""
    outcome = Outcome()
    with connected(outcome.receive, task_scheduled):
        yield outcome


def failure_reason(metadata: JsonDict) -> str:
    """A failed instance's exception as one line, ``Type: message``, from its stored
    ``exceptionType`` and ``exceptionInfo`` (the traceback, whose last block is the
    exception's own: its message may span lines)."""
    kind = str(metadata.get("exceptionType") or "unknown error")
    lines = str(metadata.get("exceptionInfo") or "").rstrip().splitlines()
    heads = (kind, kind.rpartition(".")[2])
    start = next((index for index in range(len(lines) - 1, -1, -1)
                  if any(lines[index] == head or lines[index].startswith(f"{head}: ")
                         for head in heads)), None)
    if start is None:
        message = lines[-1].strip() if lines else ""
    else:
        message = " ".join(line.strip() for line in lines[start:]).partition(": ")[2]
    message = safe_text(message)
    if len(message) > REASON_LIMIT:
        message = message[:REASON_LIMIT - 1] + "…"
    return f"{kind}: {message}" if message else kind


class TaskFailedError(click.ClickException):
    """Instances the command scheduled ended ``failed``: one line each, then the summary;
    exit status :data:`EXIT_TASK_FAILED`."""

    exit_code = EXIT_TASK_FAILED

    def __init__(self, failures: list[str], session: str) -> None:
        count = len(failures)
        super().__init__(f"{count} task{'s' * (count != 1)} failed (the change is stored: "
                         f"replay or skip {'them' if count != 1 else 'it'} once fixed; "
                         f"`triggerhooks show {session}` shows the session)")
        self.failures = failures

    def show(self, file: Any = None) -> None:
        for line in self.failures:
            click.echo(f"failed: {line}", err=True)
        click.echo(f"error: {self.format_message()}", err=True)


def report_outcome(console: Console, outcome: Outcome, session: str, done: str) -> None:
    """Print what the command did (``done``, rich markup: ``✓`` when every instance it ran
    ended well, ``!`` when one failed), then the instances handed to a runner that runs
    them elsewhere (how they end is not known here); raise :class:`TaskFailedError` if
    any instance ended ``failed``."""
    failures: list[str] = []
    handed: dict[str, list[str]] = {}
    configs: dict[str, dict[str, TaskConfig]] = {}
    for manager, instance in outcome.instances():
        uid = manager.storage.uid
        shown = instance.name if uid == session else f"{instance.name} (session {uid!r})"
        if instance.status == TaskStatus.FAILED:
            failures.append(f"{shown}: {failure_reason(instance.metadata)}")
        elif instance.status in (TaskStatus.SCHEDULED, TaskStatus.RUNNING):
            if uid not in configs:
                configs[uid] = manager.storage.tasks
            config = configs[uid].get(instance.task_name)
            runner = (config.using if config is not None else None) or manager.task_runner_name
            handed.setdefault(runner, []).append(shown)
    console.print(("[yellow]![/] " if failures else "[green]✓[/] ") + done, highlight=False)
    for runner, names in handed.items():
        console.print(f"[cyan]→[/] handed to runner [bold]{escape(runner)}[/]: "
                      f"{escape(', '.join(names))} (this command cannot know how it ends)",
                      highlight=False)
    if failures:
        raise TaskFailedError(failures, session)
