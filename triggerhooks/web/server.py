"""Serving the inspector with uvicorn (what ``triggerhooks web`` runs)."""

from __future__ import annotations

import uvicorn

from .app import create_app
from .options import WebSettings

__all__ = ["serve"]


def serve(settings: WebSettings, port: int, *, log_level: str = "warning",
          access_log: bool = False) -> None:
    """Serve the inspector on ``settings.host``:``port`` until interrupted."""
    uvicorn.run(create_app(settings), host=settings.host, port=port,
                log_level="info" if access_log else log_level,
                access_log=access_log, server_header=False, proxy_headers=False)
