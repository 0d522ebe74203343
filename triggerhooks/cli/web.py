"""``triggerhooks web``: the web inspector, on the storage of the global ``--storage``.

It lives apart from the other commands and imports the web package at its top: without
the ``triggerhooks[web]`` extra the command is still listed and says what to install.
"""

from __future__ import annotations

from typing import Protocol, cast

import click

from ..storages import open_storage

try:
    from ..web.options import DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV, WebSettings
    from ..web.server import serve
except ModuleNotFoundError as exc:  # the web extra is not installed
    MISSING: str | None = exc.name
    DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV = "127.0.0.1", 8000, "TRIGGERHOOKS_WEB_TOKEN"
else:
    MISSING = None

__all__ = ["web"]


class _Globals(Protocol):
    """The global options the command uses (``cli.app.Settings``)."""

    storage_url: str
    manager_key: str

    def import_modules(self) -> None: ...


@click.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on (anything but a loopback address exposes the sessions).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on.")
@click.option("--token", envvar=TOKEN_ENV, show_envvar=True, metavar="TOKEN",
              help="Allow actions (replay, skip, resolve logs, recover) to requests that carry "
                   "this token (16 characters at least); without it the inspector is read-only.")
@click.option("--access-log", is_flag=True, help="Log every request.")
def web(host: str, port: int, token: str | None, access_log: bool) -> None:
    """Serve the web inspector: sessions, their workflows and instances, live.

    Read-only unless started with a token. Needs the web extra:
    pip install 'triggerhooks[web]'.
    """
    if MISSING is not None:
        raise click.ClickException(f"the web inspector needs the web extra (module {MISSING!r} "
                                   "is missing): pip install 'triggerhooks[web]'")
    settings = cast(_Globals, click.get_current_context().find_root().obj)
    settings.import_modules()  # the tasks a replay runs
    url = settings.storage_url
    try:
        inspector = WebSettings(lambda uid: open_storage(url, uid), url, token or None,
                                settings.manager_key, host)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--token") from None
    mode = "read-only" if inspector.read_only else "actions need the token"
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"triggerhooks inspector of {inspector.shown_url} on http://{shown}:{port}/ "
               f"({mode}; Ctrl+C stops it)", err=True)
    serve(inspector, port, access_log=access_log)
