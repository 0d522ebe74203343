"""The ``triggerhooks`` command (also ``python -m triggerhooks``).

Storage is chosen by one URL (``--storage`` or ``$TRIGGERHOOKS_STORAGE_URL``);
an error prints one clear line and exits non-zero, and logs and warnings print
one line each: tracebacks only with ``--traceback``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

from .. import __version__
from ..config import workflow_json_schema
from ..exceptions import ConfigurationError, PluginLoadWarning, TriggerhooksError
from ..graph import WorkflowGraph, render_image, to_dot, to_mermaid
from ..manager import TriggerManager, trigger_managers
from ..plugins import list_plugins
from ..runners import ThreadingTaskRunner, task_runners
from ..serialization import safe_text
from ..storages import (
    DEFAULT_STORAGE_URL,
    SQLITE_PATH_ENV,
    STORAGE_URL_ENV,
    StorageBackend,
    open_storage,
)
from ..storages.urls import redact_text, shown_url, storage_location
from ..task import trigger_tasks
from ..workflow import (
    FORMATS,
    LIMIT_ENVS,
    FileProblem,
    WorkflowFile,
    WorkflowFileError,
    WorkflowLimits,
    load_workflow,
    validate_workflow,
)
from .checks import check_registered, report_outcome, watching
from .events import events as events_command
from .render import SignalPrinter, format_plugins, recovery_table, session_json, session_tables
from .web import web
from .why import explanation_tree

__all__ = ["IMPORT_ENV", "MANAGER_ENV", "cli", "main"]

IMPORT_ENV = "TRIGGERHOOKS_IMPORT"
MANAGER_ENV = "TRIGGERHOOKS_MANAGER"
DEMO_MODULE = "triggerhooks.demo"

GRAPH_FORMATS = {".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot",
                 ".svg": "svg", ".png": "png"}

# Mistakes a user can make (a bad file, URL, name, JSON, a server that is down):
# one line, no traceback.
USER_ERRORS = (TriggerhooksError, ValueError, OSError, ImportError, NotImplementedError)


class UserError(click.ClickException):
    """An error that is the user's to fix: printed as ``error: message``, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@dataclass
class Settings:
    """The global options, shared by every command through the click context."""

    storage_url: str
    manager_key: str
    imports: list[str]
    quiet: bool
    verbose: bool
    traceback: bool
    console: Console = field(default_factory=Console)
    _imported: bool = False

    @property
    def shown_url(self) -> str:
        """The storage URL for people: no password, and the file a bare ``sqlite://`` means."""
        return shown_url(self.storage_url)

    def import_modules(self) -> None:
        """Import the modules named by ``--import`` (they register tasks and receivers)."""
        if self._imported:
            return
        self._imported = True
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        for name in self.imports:
            try:
                importlib.import_module(name)
            except Exception as exc:
                raise UserError(f"cannot import module {name!r}: {type(exc).__name__}: {exc}"
                                ) from exc

    def storage(self, session: str) -> StorageBackend:
        return open_storage(self.storage_url, session)

    def manager(self, session: str) -> TriggerManager:
        self.import_modules()
        return trigger_managers.get(self.manager_key, self.storage(session))

    def existing(self, session: str) -> StorageBackend:
        """The storage of ``session``, which must hold something (an empty SQLite file is
        not created just to look)."""
        storage = self.storage(session)
        path = getattr(storage, "path", None)
        if isinstance(path, str) and not os.path.exists(path):
            raise UserError(f"no session {session!r} in {self.shown_url}: {path} does not exist")
        if not (storage.tasks or storage.latest_kwargs or storage.metadata):
            raise UserError(f"no session {session!r} in {self.shown_url}")
        return storage

    @contextmanager
    def reporting(self, verbose: bool | None = None,
                  quiet: bool = False) -> Iterator[SignalPrinter]:
        """Print signals while the block runs (unless ``quiet``: a command that prints
        JSON), then wait for task threads."""
        printer = SignalPrinter(self.console, self.verbose if verbose is None else verbose)
        try:
            if self.quiet or quiet:
                yield printer
            else:
                with printer.listening():
                    yield printer
        finally:
            ThreadingTaskRunner.join_all()


def _settings() -> Settings:
    settings = click.get_current_context().find_object(Settings)
    assert settings is not None, "commands run inside the triggerhooks group"
    return settings


def _json_option(text: str | None, what: str) -> dict[str, Any] | None:
    if text is None:
        return None
    limit = WorkflowLimits.from_env().max_bytes
    if text.startswith("@"):
        try:
            with open(text[1:], "rb") as stream:
                raw = stream.read(limit + 1)
        except OSError as exc:
            raise click.BadParameter(f"cannot read {text[1:]}: {exc.strerror}",
                                     param_hint=what) from None
        if len(raw) > limit:
            raise click.BadParameter(f"{text[1:]} is larger than {limit:,} bytes (the limit; "
                                     f"raise it with ${LIMIT_ENVS['max_bytes']})",
                                     param_hint=what)
        text = raw.decode("utf-8", "replace")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})", param_hint=what) from None
    except RecursionError:
        raise click.BadParameter("nested too deeply", param_hint=what) from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise click.BadParameter(f"not usable JSON ({exc})", param_hint=what) from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"must be a JSON object, not {type(value).__name__}",
                                 param_hint=what)
    return value


def _fail_workflow(error: WorkflowFileError) -> NoReturn:
    for problem in error.problems:
        click.echo(str(problem), err=True)
    _hint_imports(error)
    count = len(error.problems)
    raise UserError(f"{error.file}: {count} problem{'s' * (count != 1)}")


def _hint_imports(error: ConfigurationError) -> None:
    if any("unknown trigger task" in problem.message for problem in error.problems):
        click.echo("hint: import the modules that define your trigger tasks with "
                   f"--import MODULE (or ${IMPORT_ENV})", err=True)


class TriggerhooksGroup(click.Group):
    """Turns user mistakes into one line on stderr and a non-zero exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            raise
        except Exception as exc:
            if _wants_traceback(ctx):
                raise
            _fail(exc, ctx)


def _fail(exc: Exception, ctx: click.Context) -> NoReturn:
    """An error as one line (a workflow's or configuration's problems, one line each)."""
    if isinstance(exc, WorkflowFileError):
        _fail_workflow(exc)
    if isinstance(exc, ConfigurationError):
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        _hint_imports(exc)
        raise UserError(str(exc).splitlines()[0].rstrip(":")) from None
    if isinstance(exc, RecursionError):  # what Python cannot walk: a value nested too deeply
        raise UserError("the input is nested too deeply to handle") from None
    if isinstance(exc, USER_ERRORS):
        raise UserError(_one_line(exc, ctx)) from None
    # not the user's to fix, but still no traceback unless asked
    raise UserError(f"unexpected {type(exc).__name__}: {_one_line(exc, ctx)} "
                    "(--traceback shows where)") from None


def _wants_traceback(ctx: click.Context) -> bool:
    settings = ctx.find_object(Settings)
    return bool(settings and settings.traceback)


def _one_line(exc: BaseException, ctx: click.Context | None = None) -> str:
    """The error as one line, without any secret of the storage URL (whatever a library
    put in its message)."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and not isinstance(exc, TriggerhooksError) and exc.args:
        text = str(exc.args[0])
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    settings = ctx.find_object(Settings) if ctx is not None else None
    if settings is not None:
        text = redact_text(text, settings.storage_url)
    return safe_text(text.replace("\n", " ")) or type(exc).__name__


def _split_modules(values: tuple[str, ...]) -> list[str]:
    names: list[str] = []
    for value in values:
        names += [name.strip() for name in value.replace(",", " ").split() if name.strip()]
    return names


class _LogFormatter(logging.Formatter):
    """A record's level and message; its traceback only with ``--traceback`` (else the
    exception's one line, when the message does not say it already)."""

    def __init__(self, tracebacks: bool) -> None:
        super().__init__("%(levelname)-8s %(message)s")
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        if self.tracebacks or not record.exc_info:
            return super().format(record)
        message = record.getMessage()
        exc = record.exc_info[1]
        if exc is not None and f"{type(exc).__name__}: {exc}" not in message:
            message += f" ({type(exc).__name__}: {exc})"
        return f"{record.levelname:<8} {message}"


class _StderrHandler(logging.Handler):
    """Each record on standard error as it is, never wrapped to the terminal's width."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:
            self.handleError(record)



def _configure_logging(level: str, tracebacks: bool) -> None:
    """Print task logs on standard error, unless the host program configured logging;
    tracebacks (and where a plugin broke, logged at DEBUG) only with ``--traceback``."""
    handler = _StderrHandler()
    handler.setFormatter(_LogFormatter(tracebacks))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    if tracebacks:
        logging.getLogger("triggerhooks.plugins").setLevel(logging.DEBUG)
    if level.lower() != "debug":
        # psycopg's pool logs a warning at each retry: the command's own error says it once.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


@contextmanager
def _warnings_on_one_line() -> Iterator[None]:
    """A warning (a plugin that failed to load, ...) as ``warning: message`` on stderr."""
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        click.echo(f"warning: {message}", err=True)

    original = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


@click.group(cls=TriggerhooksGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--storage", "storage_url", envvar=STORAGE_URL_ENV, default=DEFAULT_STORAGE_URL,
              metavar="URL", show_envvar=True,
              help="Where sessions live: sqlite:///path, redis://host:port/db or memory://. "
                   f"The default, {DEFAULT_STORAGE_URL}, is the file ${SQLITE_PATH_ENV}, else "
                   "triggerhooks.sqlite3.")
@click.option("--import", "imports", envvar=IMPORT_ENV, multiple=True, metavar="MODULE",
              show_envvar=True,
              help="Import a module first (one that defines trigger tasks or receivers); "
                   "repeat, or separate with commas.")
@click.option("--manager", "manager_key", envvar=MANAGER_ENV, default="default", show_default=True,
              metavar="KEY", show_envvar=True, help="Registered trigger manager to use.")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              help="Show task logs at this level and above.")
@click.option("-q", "--quiet", is_flag=True, help="Do not print signals as they happen.")
@click.option("-v", "--verbose", is_flag=True, help="Print every signal, pre_* ones included.")
@click.option("--traceback", is_flag=True,
              help="Show tracebacks: of an error, of logged failures, of plugins that failed "
                   "to load.")
@click.version_option(__version__, "-V", "--version", prog_name="triggerhooks")
@click.pass_context
def cli(ctx: click.Context, storage_url: str, imports: tuple[str, ...], manager_key: str,
        log_level: str, quiet: bool, verbose: bool, traceback: bool) -> None:
    """Fire triggers into sessions, inspect them and draw their workflows.

    Start with `triggerhooks demo`.
    """
    _configure_logging(log_level, traceback)
    ctx.with_resource(_warnings_on_one_line())
    ctx.obj = Settings(storage_url, manager_key, _split_modules(imports), quiet, verbose,
                       traceback)


# -- workflow files ------------------------------------------------------------------------------

@cli.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--strict", is_flag=True,
              help="Also check that every `run` names a registered trigger task and every "
                   "`using` a registered runner (see --import).")
def validate(files: tuple[str, ...], strict: bool) -> None:
    """Check workflow files and list every problem with its file:line.

    Workflow files are JSON (.json), TOML (.toml) or YAML (.yaml, .yml).
    """
    settings = _settings()
    known_tasks = known_runners = None
    if strict:
        settings.import_modules()
        known_tasks = {str(k) for k in trigger_tasks}
        known_runners = {str(k) for k in task_runners}
    problems: list[FileProblem] = []
    for file in files:
        try:
            tasks = validate_workflow(file, known_tasks=known_tasks, known_runners=known_runners)
        except WorkflowFileError as exc:
            problems += exc.problems  # type: ignore[arg-type]
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            _hint_imports(exc)
            continue
        settings.console.print(f"[green]✓[/] {escape(file)}: {len(tasks)} task{'s' * (len(tasks) != 1)}, "
                               "valid", highlight=False)
    if problems:
        count = len(problems)
        raise UserError(f"{count} problem{'s' * (count != 1)} found")


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write the schema to this file instead of standard output.")
def schema(output: str | None) -> None:
    """Print the JSON Schema of workflow files (for editors and other tools)."""
    text = json.dumps(workflow_json_schema(), indent=2) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("session")
@click.argument("file")
def load(session: str, file: str) -> None:
    """Add the tasks of a workflow file to SESSION (update_configuration)."""
    settings = _settings()
    doc: WorkflowFile = load_workflow(file)
    validate_workflow(doc)
    manager = settings.manager(session)
    try:
        with settings.reporting():
            manager.update_configuration(doc.data)
    except ConfigurationError as exc:
        raise WorkflowFileError(doc.file, doc.locate(exc)) from None
    count = len(doc.data)
    settings.console.print(f"[green]✓[/] loaded {count} task{'s' * (count != 1)} from {escape(file)} into "
                           f"session [bold]{escape(session)}[/]", highlight=False)


# -- changing a session ----------------------------------------------------------------------------

@cli.command()
@click.argument("session")
@click.argument("trigger")
@click.option("--kwargs", "kwargs_text", metavar="JSON",
              help="Trigger kwargs: a JSON object, or @file.json.")
@click.option("--key", metavar="KEY",
              help="Fire at most once per session with this key: a repeat changes nothing "
                   "(safe to retry).")
def fire(session: str, trigger: str, kwargs_text: str | None, key: str | None) -> None:
    """Fire TRIGGER into SESSION and run every task it makes ready."""
    settings = _settings()
    kwargs = _json_option(kwargs_text, "--kwargs")
    manager = settings.manager(session)
    no_tasks = not manager.storage.tasks
    check_registered(manager.storage, "fired", IMPORT_ENV)
    with watching() as outcome, settings.reporting():
        firing = manager.fire(trigger, kwargs, key=key)
    if no_tasks and not firing.repeated:  # once recorded, not before a fire that fails
        click.echo(f"note: session {session!r} has no tasks yet; the trigger is recorded",
                   err=True)
    if firing.repeated:
        settings.console.print(
            f"[yellow]=[/] key [bold]{escape(str(key))}[/] was fired already (at {firing.fired_at}); "
            f"nothing changed", highlight=False)
        return
    report_outcome(settings.console, outcome, session,
                   f"fired [bold]{escape(trigger)}[/] in session [bold]{escape(session)}[/]")


@cli.command()
@click.argument("session")
@click.argument("instance")
@click.option("--kwargs", "kwargs_text", metavar="JSON",
              help="Replacement trigger kwargs for the copy (trigger name -> kwargs): a JSON "
                   "object, or @file.json.")
@click.option("--merge", is_flag=True,
              help="With --kwargs: replace only the triggers it names; the copy keeps the "
                   "failed instance's kwargs of the others.")
def replay(session: str, instance: str, kwargs_text: str | None, merge: bool) -> None:
    """Replay a failed INSTANCE of SESSION: mark it replayed, run a copy."""
    settings = _settings()
    kwargs = _json_option(kwargs_text, "--kwargs")
    if merge and kwargs is None:
        raise click.BadParameter("only makes sense with --kwargs", param_hint="--merge")
    manager = settings.manager(session)
    check_registered(manager.storage, "replayed", IMPORT_ENV)
    with watching() as outcome, settings.reporting():
        copy = manager.replay_failed_instance(instance, kwargs, merge=merge)
    status = manager.storage[copy.name].status.value
    report_outcome(settings.console, outcome, session,
                   f"replayed {escape(instance)} as [bold]{escape(copy.name)}[/] ({status})")


@cli.command()
@click.argument("session")
@click.argument("instance")
@click.option("--cascade", is_flag=True,
              help="Fire the task's cascade as if the instance had finished.")
@click.option("--result", "result_text", metavar="JSON",
              help="Kwargs of the cascade (with --cascade): a JSON object, or @file.json.")
def skip(session: str, instance: str, cascade: bool, result_text: str | None) -> None:
    """Skip a failed INSTANCE of SESSION, optionally firing its cascade."""
    settings = _settings()
    result = _json_option(result_text, "--result")
    if result is not None and not cascade:
        raise click.BadParameter("only makes sense with --cascade", param_hint="--result")
    manager = settings.manager(session)
    if cascade:
        check_registered(manager.storage, "skipped", IMPORT_ENV)
    with watching() as outcome, settings.reporting():
        manager.skip_failed_instance(instance, cascade=cascade, result=result)
    report_outcome(settings.console, outcome, session, f"skipped [bold]{escape(instance)}[/]"
                   + (" and fired its cascade" if cascade else ""))


@cli.command("resolve-logs")
@click.argument("session")
@click.argument("instances", nargs=-1, metavar="[INSTANCE]...")
@click.option("--all", "all_", is_flag=True,
              help="Every instance with unresolved logs at --level or above.")
@click.option("--level", default="warning", show_default=True,
              type=click.Choice(["warning", "error", "critical"], case_sensitive=False),
              help="With --all: the lowest level of the logs to resolve.")
def resolve_logs(session: str, instances: tuple[str, ...], all_: bool, level: str) -> None:
    """Mark the logs of instances of SESSION as reviewed."""
    settings = _settings()
    if bool(instances) == all_:
        raise click.UsageError("name the instances or pass --all (not both)")
    manager = settings.manager(session)
    names = list(instances)
    if all_:
        found = manager.storage.get_instances_with_unresolved_logs(logging.getLevelName(level.upper()))
        names = [instance.name for instance in found]
    for name in names:  # every name known before any log is marked
        manager.storage[name]
    with settings.reporting():
        for name in names:
            manager.mark_instance_logs_resolved(name)
            settings.console.print(f"[green]✓[/] resolved the logs of [bold]{escape(name)}[/]",
                                   highlight=False)
    if not names:
        settings.console.print("no instance has unresolved logs", highlight=False)


@cli.command()
@click.argument("session", required=False)
@click.option("--all", "all_", is_flag=True, help="Every session of the storage.")
@click.option("--dry-run", is_flag=True, help="Only list the stuck instances.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done (or found) as JSON.")
def recover(session: str | None, all_: bool, dry_run: bool, as_json: bool) -> None:
    """Recover SESSION (or --all): run again what a lost process or message left stuck.

    An instance scheduled but not claimed within the grace time, or running with
    an expired lease, is handed to its runner again (or failed after too many
    lost attempts); a ready task without an instance is scheduled; a session
    whose tasks are all resolved is finalized. Safe to repeat: nothing runs twice.
    """
    _sweep(session, all_, dry_run, as_json)


@cli.command()
@click.option("--storage", "storage_url", metavar="URL",
              help="The storage to migrate (default: the global --storage).")
def migrate(storage_url: str | None) -> None:
    """Create or upgrade the tables of the storage, and print its schema version.

    PostgreSQL and SQLite make their tables on first use; this makes them ahead,
    for a role that may create tables while the applications' role may not.
    Memory and Redis need none, and say so.
    """
    settings = _settings()
    if storage_url:
        settings.storage_url = storage_url  # so that an error hides its password too
    version = settings.storage("-").migrate()
    if version is None:
        click.echo(f"{settings.shown_url}: nothing to migrate (this storage has no tables)")
    else:
        click.echo(f"{settings.shown_url}: schema version {version}")


@cli.command()
@click.argument("session", required=False)
@click.option("--all", "all_", is_flag=True, help="Every session of the storage.")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
def stuck(session: str | None, all_: bool, as_json: bool) -> None:
    """List the stuck instances of SESSION (or --all), without touching them.

    Stuck: scheduled but not claimed within the grace time, or running with an
    expired lease (with its worker, attempt and when the lease expired).
    `triggerhooks recover` runs them again.
    """
    _sweep(session, all_, True, as_json)


def _sweep(session: str | None, all_: bool, dry_run: bool, as_json: bool) -> None:
    settings = _settings()
    if bool(session) == all_:
        raise click.UsageError("name a SESSION or pass --all (not both)")
    if session:
        settings.existing(session)
    uids = [session] if session else sweep_uids(settings)
    report: dict[str, list[dict[str, Any]]] = {}
    with settings.reporting(quiet=as_json):
        for uid in uids:
            manager = settings.manager(uid)
            found = manager.stuck() if dry_run else manager.recover()
            report[uid] = [entry.to_json() for entry in found]
    if as_json:
        click.echo(json.dumps(report if all_ else report[uids[0]], indent=2, ensure_ascii=False))
        return
    settings.console.print(recovery_table(report, dry_run), highlight=False)


def sweep_uids(settings: Settings) -> list[str]:
    """Every session of the storage, for ``--all``."""
    try:
        return settings.storage("-").session_uids()
    except NotImplementedError as exc:
        raise UserError(f"{exc}: name a SESSION instead of --all") from None


# -- looking at a session ----------------------------------------------------------------------------

@cli.command()
@click.argument("session")
@click.option("--json", "as_json", is_flag=True, help="Print the session as JSON.")
def show(session: str, as_json: bool) -> None:
    """Show the tasks and instances of SESSION with their status.

    Each task is shown with what it still waits for (its after triggers not
    fired yet; `triggerhooks why` says why), each instance with its status,
    log level, last change and its result or exception; --json prints
    everything.
    """
    settings = _settings()
    storage = settings.existing(session)
    if as_json:
        click.echo(json.dumps(session_json(storage, settings.shown_url), indent=2,
                              ensure_ascii=False))
        return
    for part in session_tables(storage, settings.shown_url, settings.console.width):
        settings.console.print(part, highlight=False)


@cli.command()
@click.argument("session")
@click.argument("task", metavar="TASK|INSTANCE")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def why(session: str, task: str, as_json: bool) -> None:
    """Explain why TASK (or INSTANCE) of SESSION has not run yet, or where it stands.

    Shows, as a tree, which of its after triggers fired (and when) and which
    are missing; for a missing task's name, why that task has not finished,
    down to the root causes: a trigger never fired, an instance failed, was
    abandoned, waits for its runner or is running.
    """
    settings = _settings()
    settings.existing(session)
    found = settings.manager(session).explain(task)
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2, ensure_ascii=False))
        return
    settings.console.print(explanation_tree(found), highlight=False)


@cli.command()
@click.argument("target", metavar="FILE|SESSION")
@click.option("-f", "--format", "format_", type=click.Choice(["mermaid", "dot", "svg", "png"]),
              help="Output format [default: from --output's suffix (.mmd, .dot, .svg, .png), "
                   "else mermaid].")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file (.mmd, .dot, .svg, .png) instead of standard output.")
@click.option("--session", "is_session", is_flag=True,
              help="TARGET is a session even if a file of that name exists.")
def graph(target: str, format_: str | None, output: str | None, is_session: bool) -> None:
    """Draw a workflow file, or a session coloured by instance status.

    Mermaid and DOT are text; SVG and PNG need Graphviz's `dot` on PATH.
    """
    settings = _settings()
    path = Path(target)
    drawing_file = not is_session and (path.is_file() or path.suffix.lower() in FORMATS)
    if drawing_file and output and path.is_file() and Path(output).resolve() == path.resolve():
        raise click.BadParameter("is the workflow file being drawn: it would be overwritten",
                                 param_hint="--output")
    if format_ is None:
        suffix = Path(output).suffix.lower() if output else ""
        if suffix and suffix not in GRAPH_FORMATS:
            raise click.BadParameter(
                f"{suffix!r} says no format triggerhooks draws in: name the file "
                f"{', '.join(GRAPH_FORMATS)}, or give --format", param_hint="--output")
        format_ = GRAPH_FORMATS.get(suffix, "mermaid")
    if drawing_file:
        tasks = validate_workflow(target)
        drawing = WorkflowGraph.build(tasks, title=path.name)
    else:
        storage = settings.existing(target)
        drawing = WorkflowGraph.build(storage.tasks, storage.instances.values(),
                                      storage.latest_kwargs, title=f"session {target}")
    if format_ == "mermaid":
        data = to_mermaid(drawing).encode()
    elif format_ == "dot":
        data = to_dot(drawing).encode()
    else:
        data = render_image(to_dot(drawing), format_)
    if output:
        Path(output).write_bytes(data)
        click.echo(f"wrote {output}", err=True)
    elif format_ == "png" and sys.stdout.isatty():
        raise click.UsageError("PNG is binary: write it with --output FILE.png")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the plugins as JSON.")
def plugins(as_json: bool) -> None:
    """List the loaded plugins and what each registers.

    Plugins that failed to load are listed with the reason, and the exit
    status is then 1.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)  # the listing shows the failures
        infos, failed = list_plugins()
    if as_json:
        click.echo(json.dumps({"plugins": [asdict(info) for info in infos], "failed": failed},
                              indent=2))
    else:
        click.echo(format_plugins(infos, failed))
    if failed:
        raise SystemExit(1)


cli.add_command(events_command)


# -- the demo ----------------------------------------------------------------------------------------

@cli.command()
@click.option("--session", default="questionnaire-demo", show_default=True,
              help="Session uid to (re)create.")
@click.option("--embedded", is_flag=True,
              help="Fire isEmbeddedApplication first: browser metadata is then abandoned.")
def demo(session: str, embedded: bool) -> None:
    """Run the questionnaire workflow: signals as they happen, then the session.

    The session stays in the storage (by default the SQLite file
    $TRIGGERHOOKS_SQLITE_PATH, else triggerhooks.sqlite3 in the working
    directory) for `triggerhooks show`.
    """
    settings = _settings()
    # Loaded as --import loads a user's tasks: only this command registers the demo's.
    run_questionnaire = importlib.import_module(DEMO_MODULE).run_questionnaire
    console = settings.console
    manager = settings.manager(session)
    location = getattr(manager.storage, "path", None) or storage_location(settings.storage_url)
    console.print(f"[bold]triggerhooks demo[/]: the questionnaire workflow in session "
                  f"[bold cyan]{escape(session)}[/]\nstorage: {escape(settings.shown_url)}",
                  highlight=False)
    manager.storage.clear()

    def announce(trigger: str, kwargs: dict[str, Any]) -> None:
        text = json.dumps(kwargs, ensure_ascii=False)
        console.print(f"\n[bold]fire[/] [yellow]{escape(trigger)}[/] {escape(text)}", highlight=False,
                      no_wrap=True, overflow="ellipsis")

    with settings.reporting():
        run_questionnaire(manager, embedded=embedded, announce=announce)
    console.print()
    for part in session_tables(manager.storage, settings.shown_url, console.width):
        console.print(part, highlight=False)
    command = "triggerhooks"
    if settings.storage_url != DEFAULT_STORAGE_URL:
        command += f" --storage {settings.shown_url}"
    console.print()
    if location:
        console.print(f"The session is stored in [bold]{escape(location)}[/].", highlight=False)
    else:
        console.print("The session lived in this process's memory and is gone now.",
                      highlight=False)
    shown = escape(f"{command} show {session}"), escape(f"{command} graph {session}")
    console.print(f"Inspect it with:  [bold]{shown[0]}[/]\n"
                  f"Draw it with:     [bold]{shown[1]}[/]",
                  highlight=False, soft_wrap=True)


cli.add_command(web)


def main(argv: list[str] | None = None) -> None:
    """Run the command line (the ``triggerhooks`` console script)."""
    cli.main(args=argv, prog_name="triggerhooks")
