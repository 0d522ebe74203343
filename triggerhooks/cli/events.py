"""``triggerhooks events``: every known event as the events table (text, Markdown or JSON).

The events are triggerhooks' own signals and the events declared with
``declare_event`` in the modules this process imports: plugins (once they are
loaded), receiver modules (``$TRIGGERHOOKS_RECEIVER_MODULES`` and plugins'),
and the modules ``--import`` names.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any, Protocol

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..events import known_events, load_receiver_modules
from ..events.table import event_json, events_markdown, first_line
from ..plugins import BUILTINS, list_plugins
from ..serialization import JsonDict
from ..signals import EventArgument, OrderedSignal

__all__ = ["event_sources", "events"]

CORE = "triggerhooks"
"""The source of triggerhooks' own signals."""


class _Settings(Protocol):
    """What this command needs of the command line's global options."""

    imports: list[str]
    console: Console

    def import_modules(self) -> None: ...


class _NoEventError(click.ClickException):
    """No event matches the patterns: ``error: ...``, exit status 1, as the other commands."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def event_sources() -> dict[str, str]:
    """Module (or package) -> the plugin it belongs to: a plugin's own package and its
    receiver modules, for every loaded plugin but the built-ins."""
    sources: dict[str, str] = {}
    infos, _ = list_plugins()
    for info in infos:
        if info.name == BUILTINS:
            continue
        package = info.module.rpartition(".")[0] or info.module
        for module in (package, *info.receiver_modules):
            sources.setdefault(module, info.name)
    return sources


def _source(signal: OrderedSignal, sources: dict[str, str]) -> str:
    module = signal.declared_in or ""
    if module == "triggerhooks.signals":
        return CORE
    matches = [prefix for prefix in sources
               if module == prefix or module.startswith(prefix + ".")]
    return f"plugin {sources[max(matches, key=len)]}" if matches else "application"


def _plain(text: str) -> str:
    """Markdown of the metadata as plain text for the terminal."""
    return text.replace("`", "")


def _argument_line(argument: EventArgument) -> str:
    line = argument.name + (f": {argument.type}" if argument.type else "")
    if not argument.required:
        line += " (optional)"
    return line + (f" — {_plain(argument.description)}" if argument.description else "")


def _table(signals: list[OrderedSignal], sources: dict[str, str]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_lines=True, expand=False)
    for column in ("event", "emitted by", "arguments", "order", "what"):
        table.add_column(column, overflow="fold")
    for signal in signals:
        name = Text(signal.name, style="bold")
        name.append(f"\n{_source(signal, sources)}", style="dim")
        table.add_row(name, _plain(signal.emitted_by) or "—",
                      "\n".join(_argument_line(each) for each in signal.arguments) or "—",
                      _plain(signal.order) or "—", first_line(signal) or "—")
    return table


def _split(values: tuple[str, ...]) -> list[str]:
    return [name for value in values for name in value.replace(",", " ").split()]


@click.command()
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...")
@click.option("--import", "imports", multiple=True, metavar="MODULE",
              help="Import a module first (one that declares events); repeat, or separate "
                   "with commas. Adds to the global --import.")
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON.")
@click.option("--markdown", is_flag=True,
              help="Print the table in Markdown (for your docs).")
@click.pass_obj
def events(settings: _Settings, patterns: tuple[str, ...], imports: tuple[str, ...],
           as_json: bool, markdown: bool) -> None:
    """List every known event: triggerhooks' signals, plugins' events and the events
    declared in imported modules, with what emits each, its arguments and its order.

    Events declared (declare_event) in the modules --import names, in receiver
    modules ($TRIGGERHOOKS_RECEIVER_MODULES, plugins) and in plugins are listed
    after triggerhooks' own. PATTERNs (shell-style: 'shop.*') keep the events
    whose name matches one.
    """
    if as_json and markdown:
        raise click.UsageError("--json or --markdown, not both")
    settings.imports.extend(_split(imports))
    settings.import_modules()
    sources = event_sources()  # loads the plugins, which may declare events
    load_receiver_modules()
    signals = [signal for signal in known_events()
               if not patterns or any(fnmatch.fnmatchcase(signal.name, each) for each in patterns)]
    if not signals:
        raise _NoEventError(f"no event matches {' '.join(patterns)} (import the modules that "
                            "declare your events with --import MODULE)")
    if as_json:
        listed: list[JsonDict] = [{**event_json(signal), "source": _source(signal, sources)}
                                  for signal in signals]
        click.echo(json.dumps({"events": listed}, indent=2, ensure_ascii=False))
    elif markdown:
        click.echo(events_markdown(signals), nl=False)
    else:
        settings.console.print(_table(signals, sources), highlight=False)
