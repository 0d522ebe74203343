"""``manage.py triggerhooks ARGS``: the core's command line, run with the project's settings.

Every command of ``triggerhooks`` (``show``, ``fire``, ``replay``, ``skip``,
``recover``, ...) works unchanged, on the storage and with the manager and
runner that ``TRIGGERHOOKS`` names, with the apps' tasks and receivers already
loaded. Options given on the command line (``--storage``) still win.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import IO, Any

import click

from triggerhooks.cli import cli

from .managers import storage_url
from .settings import get_settings

__all__ = ["DJANGO_OPTIONS", "TASK_RUNNER_ENV", "CliOutcome", "run_cli", "split_django_options"]

TASK_RUNNER_ENV = "TRIGGERHOOKS_TASK_RUNNER"
"""Where the core's managers read their default runner; the command line has no option."""

DJANGO_OPTIONS = {"--settings": True, "--pythonpath": True, "--no-color": False,
                  "--force-color": False, "--skip-checks": False}
"""Django's options (and whether each takes a value): taken out before the rest goes to
the command line, which has none of them."""


@dataclass
class CliOutcome:
    """How a run of the command line ended: its exit status and, for a failure, its error."""

    status: int = 0
    error: str = ""


def split_django_options(argv: list[str]) -> tuple[list[str], dict[str, str | bool]]:
    """``argv`` without Django's options, and those options (``{"--settings": "x"}``)."""
    rest: list[str] = []
    found: dict[str, str | bool] = {}
    items = iter(argv)
    for arg in items:
        name, eq, value = arg.partition("=")
        if arg == "--":
            rest += [arg, *items]
            break
        if name not in DJANGO_OPTIONS:
            rest.append(arg)
        elif DJANGO_OPTIONS[name]:
            found[name] = value if eq else next(items, "")
        else:
            found[name] = True
    return rest, found


class _Bytes(io.RawIOBase):
    """``sys.stdout.buffer`` for a text stream (``triggerhooks graph`` writes bytes)."""

    def __init__(self, target: IO[str]) -> None:
        self._target = target

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._target.write(bytes(data).decode("utf-8", "replace"))
        return len(data)


class _Text(io.TextIOBase):
    """A caller's text stream (``call_command(stdout=...)``) as the command line needs it."""

    def __init__(self, target: IO[str]) -> None:
        self._target = target
        self.buffer = _Bytes(target)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._target.write(text)
        return len(text)

    def flush(self) -> None:
        flush = getattr(self._target, "flush", None)
        if callable(flush):
            flush()


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables while the block runs (the core reads some at that time)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _logging_restored() -> Iterator[None]:
    """Leave logging as it was: the command line configures it for a process of its own."""
    root, plugins = logging.getLogger(), logging.getLogger("triggerhooks.plugins")
    saved = (root.handlers[:], root.level, plugins.level)
    try:
        yield
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        plugins.setLevel(saved[2])


def _head() -> tuple[list[str], dict[str, str]]:
    """The options the settings give the command line, and the environment it needs."""
    config = get_settings()
    url = storage_url(config)
    head = (["--storage", url] if url else []) + ["--manager", config.manager]
    env = {TASK_RUNNER_ENV: config.task_runner} if config.task_runner else {}
    return head, env


def run_cli(argv: list[str], *, stdout: IO[str] | None = None, stderr: IO[str] | None = None,
            color: bool | None = None, prog_name: str = "manage.py triggerhooks") -> CliOutcome:
    """Run the ``triggerhooks`` command line on ``argv`` with the settings' storage,
    manager and runner; its output goes to ``stdout``/``stderr`` when given (else the
    process's), in colour or not as ``color`` says (``None``: as the terminal allows).
    Never exits: the outcome says how it ended."""
    head, env = _head()
    if color is not None:
        env["FORCE_COLOR" if color else "NO_COLOR"] = "1"
    with ExitStack() as stack:
        if stdout is not None:
            stack.enter_context(redirect_stdout(_Text(stdout)))
        if stderr is not None:
            stack.enter_context(redirect_stderr(_Text(stderr)))
        stack.enter_context(_environment(env))
        stack.enter_context(_logging_restored())
        outcome = _invoke(head + argv, prog_name)
    return outcome


def _invoke(args: list[str], prog_name: str) -> CliOutcome:
    try:
        result = cli.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return CliOutcome(exc.exit_code, exc.format_message())
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        return CliOutcome(1, "aborted")
    except SystemExit as exc:  # a command that exits by itself (``plugins`` with failures)
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return CliOutcome(status, f"exit status {status}" if status else "")
    status = result if isinstance(result, int) else 0
    return CliOutcome(status, f"exit status {status}" if status else "")
