"""``manage.py triggerhooks ARGS``: the ``triggerhooks`` command line with the project's settings.

Everything after ``triggerhooks`` goes to the core's command line as it is
(``-v`` is its ``--verbose``, ``--traceback`` its own), but for Django's
``--settings``, ``--pythonpath``, ``--no-color`` and ``--force-color``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...commands import run_cli, split_django_options


class _ForwardingParser(CommandParser):
    """Parses nothing but Django's own options: the rest is the command line's."""

    def parse_args(self, args: Any = None,  # type: ignore[override] # one form is enough
                   namespace: Any = None) -> argparse.Namespace:
        rest, django = split_django_options(list(sys.argv[2:] if args is None else args))
        return argparse.Namespace(
            args=rest, settings=django.get("--settings") or None,
            pythonpath=django.get("--pythonpath") or None, verbosity=1, traceback=False,
            no_color=bool(django.get("--no-color")), force_color=bool(django.get("--force-color")),
            skip_checks=True)


class Command(BaseCommand):
    help = "Run a triggerhooks command (show, fire, replay, skip, recover, ...) with TRIGGERHOOKS."
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        return _ForwardingParser(prog=f"{prog_name} {subcommand}", add_help=False,
                                 called_from_command_line=getattr(
                                     self, "_called_from_command_line", None))

    def print_help(self, prog_name: str, subcommand: str) -> None:
        """``manage.py help triggerhooks``: the command line's own help."""
        run_cli(["--help"], prog_name=f"{prog_name} {subcommand}")

    def handle(self, *args: str, **options: Any) -> None:
        color = True if options.get("force_color") else False if options.get("no_color") else None
        outcome = run_cli(list(args), stdout=options.get("stdout"), stderr=options.get("stderr"),
                          color=color)
        if outcome.status:
            if getattr(self, "_called_from_command_line", False):
                sys.exit(outcome.status)  # the command line has printed its error already
            raise CommandError(outcome.error, returncode=outcome.status)
