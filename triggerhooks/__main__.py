"""``python -m triggerhooks plugins``: list the plugins and what each registered.

Exits 1 when a plugin failed to load or two plugins claim one key. The
formatting lives in :func:`triggerhooks.plugins.format_plugins` so a fuller
command line can print the same thing.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from .exceptions import PluginLoadWarning, TriggerhooksError
from .plugins import format_plugins, list_plugins

USAGE = "usage: python -m triggerhooks plugins"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if args != ["plugins"]:
        print(USAGE, file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)  # the listing shows the failures
        try:
            plugins, failed = list_plugins()
        except TriggerhooksError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(format_plugins(plugins, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
