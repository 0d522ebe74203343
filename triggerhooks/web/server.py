"""Serving the inspector with uvicorn (what ``triggerhooks web`` runs)."""

from __future__ import annotations

import socket

import uvicorn

from .app import create_app
from .options import WebSettings

__all__ = ["serve"]


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port``, or an :class:`OSError` that says where (uvicorn
    would log it and exit with status 3, which the command keeps for failed tasks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {reason}") from None
    return sock


def serve(settings: WebSettings, port: int, *, log_level: str = "warning",
          access_log: bool = False) -> None:
    """Serve the inspector on ``settings.host``:``port`` until interrupted."""
    sock = _listen(settings.host, port)
    config = uvicorn.Config(create_app(settings), host=settings.host, port=port,
                            log_level="info" if access_log else log_level,
                            access_log=access_log, server_header=False, proxy_headers=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
