"""What the command line shows: session tables, session JSON, signals as they happen and
the plugin listing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

from blinker import NamedSignal
from rich import box
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..models import TaskConfig, TaskInstance
from ..plugins import BUILTINS, PluginInfo, list_plugins
from ..serialization import JsonDict
from ..signals import namespace
from ..storages import StorageBackend
from ..testing.signals import connected

__all__ = [
    "STATUS_STYLES",
    "SignalPrinter",
    "compact_json",
    "format_plugins",
    "last_change",
    "session_json",
    "session_tables",
]

STATUS_STYLES = {
    "unstarted": "dim",
    "scheduled": "cyan",
    "running": "bold blue",
    "finished": "green",
    "failed": "bold red",
    "replayed": "magenta",
    "skipped": "yellow",
    "abandoned": "dim",
}
"""Rich style of each instance status."""

LEVEL_STYLES = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red"}


def compact_json(value: Any, limit: int = 100) -> str:
    """``value`` as one line of JSON, cut at ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=repr)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def format_plugins(plugins: Iterable[PluginInfo] | None = None,
                   failed: Mapping[str, str] | None = None) -> str:
    """The text ``python -m triggerhooks plugins`` prints (default: what is loaded now)."""
    if plugins is None:
        plugins, failed = list_plugins()
    lines: list[str] = []
    for info in plugins:
        lines.append(f"{info.name} ({_plugin_origin(info)})")
        for kind, keys in info.registered.items():
            lines.append(f"    {kind}s: {', '.join(keys)}")
        if info.receiver_modules:
            lines.append(f"    receiver modules: {', '.join(info.receiver_modules)}")
        if not info.registered and not info.receiver_modules:
            lines.append("    (nothing registered)")
    if failed:
        lines.append("failed to load:")
        lines.extend(f"    {name}: {why}" for name, why in sorted(failed.items()))
    return "\n".join(lines)


def _plugin_origin(info: PluginInfo) -> str:
    if info.name == BUILTINS:
        return "built in"
    if info.distribution:
        return f"{info.distribution} {info.version}, entry point {info.entry_point}"
    return f"registered in process, module {info.module}"


def last_change(instance: TaskInstance) -> str:
    """When the instance last changed status (an ISO 8601 UTC timestamp), or ``""``."""
    stamps = instance.metadata.get("timestamps") or {}
    return max(stamps.values(), default="") if isinstance(stamps, dict) else ""


def _short_time(stamp: str, day: str = "") -> str:
    """``YYYY-MM-DD HH:MM:SS`` of an ISO timestamp; only the time when it is on ``day``."""
    if day and stamp.startswith(day):
        return stamp[11:19]
    return stamp[:19].replace("T", " ")


def _waits_for(config: TaskConfig) -> str:
    parts = []
    if config.requires:
        parts.append("after " + ", ".join(config.requires))
    if config.and_every:
        parts.append("every " + config.and_every)
    if config.unless:
        parts.append("unless " + ", ".join(config.unless))
    return "; ".join(parts)


def _waiting_for(config: TaskConfig, fired: set[str], instances: list[TaskInstance]) -> str:
    """What the task still waits for: its ``after`` triggers that have not fired, or why
    it never will run."""
    if config.unless and all(trigger in fired for trigger in config.unless):
        return "nothing: vetoed"
    if any(i.status == "abandoned" and "upstream" in (i.metadata.get("abandoned") or {})
           for i in instances):
        return "nothing: blocked"
    if config.and_every is None and instances and all(i.is_resolved for i in instances):
        # one-shot and done (run, or abandoned or finished by hand while it waited)
        return "nothing: abandoned" if instances[-1].status == "abandoned" else "-"
    missing = [trigger for trigger in config.requires if trigger not in fired]
    if config.and_every and not any(i.status == "unstarted" for i in instances) and (
            missing or config.and_every not in fired):
        missing.append(f"every {config.and_every}")
    if not missing and config.and_every is None and instances:
        return "-"
    return ", ".join(missing) or "-"


def _detail(instance: TaskInstance) -> str:
    meta = instance.metadata
    if instance.status == "abandoned" and isinstance(meta.get("abandoned"), dict):
        reason = meta["abandoned"]
        if reason.get("upstream"):
            return f"{reason['upstream']} was abandoned"
        return f"unless {reason.get('unless')} fired"
    if instance.status == "failed":
        return f"{meta.get('exceptionType', '?')}: {_exception_message(meta)}"
    if instance.status == "finished" and "result" in meta:
        return compact_json(meta["result"], 60)
    if "parent" in meta:
        return f"replay of {meta['parent']}"
    return ""


def _exception_message(meta: JsonDict) -> str:
    info = str(meta.get("exceptionInfo") or "").strip().splitlines()
    last = info[-1] if info else ""
    return last.partition(": ")[2] or last


def _instances_summary(instances: list[TaskInstance]) -> str:
    counts: dict[str, int] = {}
    for instance in instances:
        counts[instance.status.value] = counts.get(instance.status.value, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "none yet"


def session_json(storage: StorageBackend, storage_url: str) -> JsonDict:
    """A session as plain JSON for machines (``triggerhooks show --json``)."""
    tasks = storage.tasks
    instances = sorted(storage.instances.values(), key=lambda i: (i.task_name, i.index))
    unresolved = {config.name for config in storage.get_unresolved_tasks()}
    kwargs = storage.latest_kwargs
    return {
        "session": storage.uid,
        "storage": storage_url,
        "metadata": storage.metadata,
        "finalized": storage.is_finalized,
        "tasks": [{"name": name, **config.to_json(), "resolved": name not in unresolved}
                  for name, config in tasks.items()],
        "instances": [{
            "name": i.name,
            "task": i.task_name,
            "status": i.status.value,
            "logLevel": i.log_level_name,
            "logsResolved": i.logs_resolved,
            "lastChange": last_change(i) or None,
            "kwargs": i.kwargs,
            "metadata": i.metadata,
        } for i in instances],
        "triggers": kwargs,
    }


def _level_text(instance: TaskInstance) -> Text:
    level = instance.log_level_name if instance.log_level else "-"
    text = Text(level, style=LEVEL_STYLES.get(level, ""))
    if instance.log_level and instance.logs_resolved:
        text.append(" (resolved)", style="dim")
    return text


def session_tables(storage: StorageBackend, storage_url: str, width: int = 80) -> list[Any]:
    """Rich renderables for ``triggerhooks show``: a header, the tasks and the instances
    (``width``: the console's, which the instance table keeps to)."""
    tasks = storage.tasks
    order = {name: position for position, name in enumerate(tasks)}
    instances = sorted(storage.instances.values(),
                       key=lambda i: (order.get(i.task_name, len(order)), i.task_name, i.index))
    meta = storage.metadata
    by_task: dict[str, list[TaskInstance]] = {}
    for instance in instances:
        by_task.setdefault(instance.task_name, []).append(instance)

    header = Text.assemble(("Session ", "bold"), (storage.uid, "bold cyan"),
                           f"  {storage_url}")
    if meta.get("createdAt"):
        header.append(f"\ncreated {_short_time(meta['createdAt'])} UTC")
    if meta.get("finalizedAt"):
        header.append(f" · finalized {_short_time(meta['finalizedAt'])} UTC", style="green")
    elif tasks:
        header.append(" · not finalized")

    fired = set(storage.latest_kwargs)
    task_table = _table("Tasks")
    task_table.add_column("task (runs)", overflow="fold")
    task_table.add_column("waits for", overflow="fold")
    task_table.add_column("waiting for", overflow="fold")
    task_table.add_column("instances", overflow="fold")
    for name, config in tasks.items():
        runner = f" using {config.using}" if config.using else ""
        mine = by_task.get(name, [])
        # Every cell is a Text: names are the application's, never console markup.
        task_table.add_row(Text.assemble((name, "bold"), "\n", (config.run + runner, "dim")),
                           Text(_waits_for(config)), Text(_waiting_for(config, fired, mine)),
                           Text(_instances_summary(mine)))

    instance_table = _table("Instances")
    created_on = str(meta.get("createdAt", ""))[:10]
    widest = max((len(i.name) for i in instances), default=8)
    changed = max((len(_short_time(last_change(i), created_on)) for i in instances), default=8)
    # Every column but the detail is as wide as its widest cell (a name at most 32); the
    # detail gets what is left of the width, so a long failure never pushes the status out.
    levels = max((len(_level_text(i)) for i in instances), default=5)
    name_width = min(widest, 32)
    left = width - (name_width + 9 + max(levels, 5) + changed) - 3 * 4  # padding, rule
    instance_table.add_column("instance", no_wrap=True, overflow="ellipsis", width=name_width)
    instance_table.add_column("status", no_wrap=True, min_width=9)
    instance_table.add_column("level", no_wrap=True, min_width=5)
    instance_table.add_column("changed", no_wrap=True, min_width=changed)
    instance_table.add_column("detail", overflow="ellipsis", no_wrap=True, max_width=max(left, 8))
    for instance in instances:
        instance_table.add_row(
            Text(instance.name),
            Text(instance.status.value, style=STATUS_STYLES.get(instance.status.value, "")),
            _level_text(instance),
            Text(_short_time(last_change(instance), created_on)),
            Text(_detail(instance)),
        )

    triggers = Text.assemble(("Triggers fired: ", "bold"), ", ".join(sorted(fired)) or "none")
    parts: list[Any] = [header, task_table]
    parts.append(instance_table if instances else Text("No instances yet.", style="dim"))
    parts.append(triggers)
    return parts


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                 pad_edge=False, show_edge=False)


def _describe(name: str, kwargs: dict[str, Any]) -> str:
    instance = kwargs.get("task_instance")
    iname = escape(instance.name) if isinstance(instance, TaskInstance) else "?"
    if name in ("pre_fire", "post_fire"):
        text = f"[bold]{escape(str(kwargs.get('trigger_name')))}[/]"
        trigger_kwargs = kwargs.get("trigger_kwargs")
        if trigger_kwargs:
            text += f" {escape(compact_json(trigger_kwargs, 70))}"
        scheduled = kwargs.get("tasks_scheduled")
        if scheduled:
            text += " → scheduled " + ", ".join(escape(i.name) for i in scheduled)
        return text
    if name == "task_completed":
        return f"{iname} [green]finished[/] → {escape(compact_json(kwargs.get('result'), 70))}"
    if name == "task_failed":
        exc = kwargs.get("exception")
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else "set by hand"
        return f"{iname} [red]failed[/]: {escape(reason)}"
    if name == "post_replay":
        return f"{iname} (replay of {escape(str(kwargs.get('parent')))})"
    if name in ("pre_skip", "post_skip"):
        return f"{iname}" + (" with cascade" if kwargs.get("cascade") else "")
    if name == "configuration_updated":
        return ", ".join(escape(t) for t in kwargs.get("tasks", {}))
    if name == "session_finalized":
        return escape(str(kwargs.get("session_uid")))
    return iname


class SignalPrinter:
    """Prints each triggerhooks signal on one line as it is sent (any thread)."""

    QUIET = frozenset({"pre_fire", "task_started", "pre_replay", "pre_skip"})
    """Signals left out unless ``verbose``."""

    def __init__(self, console: Console, verbose: bool = False) -> None:
        self.console = console
        self.verbose = verbose
        self.lock = threading.Lock()
        self.seen: list[str] = []

    def receiver(self, name: str) -> Callable[..., None]:
        def receive(sender: Any, **kwargs: Any) -> None:
            with self.lock:
                self.seen.append(name)
                if self.verbose or name not in self.QUIET:
                    self.console.print(f"  [cyan]{name:<21}[/] {_describe(name, kwargs)}",
                                       highlight=False, no_wrap=True, overflow="ellipsis")
        receive.__qualname__ = f"SignalPrinter.{name}"
        return receive

    @contextmanager
    def listening(self) -> Iterator[SignalPrinter]:
        """Print every signal of :mod:`triggerhooks.signals` while the block runs."""
        with ExitStack() as stack:
            for name, signal in sorted(namespace.items()):
                if isinstance(signal, NamedSignal):
                    stack.enter_context(connected(self.receiver(name), signal))
            yield self


_RECOVERY_STYLES = {"handed off": "yellow", "failed": "red", "scheduled": "cyan",
                    "abandoned": "magenta", "finalized": "green"}


def recovery_table(report: Mapping[str, list[JsonDict]], dry_run: bool) -> RenderableType:
    """What ``triggerhooks recover`` did (or, with ``--dry-run``, found stuck) per session."""
    rows = [(uid, entry) for uid, entries in report.items() for entry in entries]
    sessions = len(report)
    scope = f"{sessions} session{'s' * (sessions != 1)}"
    if not rows:
        return Text(f"nothing stuck in {scope}" if dry_run else f"nothing to recover in {scope}",
                    style="green")
    table = Table(title=("stuck instances" if dry_run else "recovered") + f" ({scope})",
                  title_justify="left")
    table.add_column("session", overflow="fold")
    table.add_column("instance", overflow="fold")
    if dry_run:
        for column in ("status", "reason", "since", "worker", "attempt"):
            table.add_column(column, overflow="fold")
        for uid, entry in rows:
            table.add_row(*map(Text, (uid, entry["instance"], entry["status"], entry["reason"],
                                      entry["since"], entry["worker"] or "",
                                      str(entry["attempt"] or ""))))
        return table
    table.add_column("action")
    table.add_column("why", overflow="fold")
    for uid, entry in rows:
        style = _RECOVERY_STYLES.get(entry["action"], "")
        table.add_row(Text(uid), Text(entry["instance"] or ""), Text(entry["action"], style=style),
                      Text(entry["reason"]))
    return table

