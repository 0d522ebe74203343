"""The ``triggerhooks`` command line: ``triggerhooks --help`` lists the commands."""

from __future__ import annotations

from .app import cli, main

__all__ = ["cli", "main"]
