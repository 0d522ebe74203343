"""The web inspector's ASGI application: its routes, the guard every request passes, and
errors as pages that never show a secret.

``create_app(WebSettings(...))`` returns a Starlette application; ``triggerhooks web``
serves it with uvicorn, and any ASGI server (or a test client) can serve it too.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..exceptions import (
    InstanceNotFoundError,
    InvalidSessionError,
    InvalidStatusError,
    StorageUnavailableError,
    TriggerhooksError,
)
from ..graph import GraphvizError
from . import actions, pages
from .auth import Refused, check_host
from .inspect import SessionNotFoundError
from .options import WebSettings
from .rendering import SECURITY_HEADERS, render

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


def _problem(exc: Exception, settings: WebSettings) -> tuple[int, str]:
    """The HTTP status of an error raised while serving a request, and its message for
    people (without any secret of the storage URL)."""
    if isinstance(exc, Refused):
        return exc.status, exc.message
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    message = settings.redact(message)
    if isinstance(exc, SessionNotFoundError | InstanceNotFoundError | InvalidSessionError):
        return 404, message
    if isinstance(exc, StorageUnavailableError | GraphvizError):
        return 503, message
    if isinstance(exc, InvalidStatusError):
        return 409, message  # an action the instance's status does not allow
    if isinstance(exc, TriggerhooksError):
        # What the form sent cannot be used (kwargs not storable, ...), or a conflict.
        return (400 if isinstance(exc, ValueError | TypeError) else 409), message
    return 500, f"unexpected {type(exc).__name__}: {message}"


def guarded(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` whose errors become an error page (a line in the log for unexpected
    ones, redacted, with the traceback at DEBUG level)."""
    async def run(request: Request) -> Response:
        settings = pages.settings_of(request)
        try:
            return await endpoint(request)
        except Exception as exc:
            status, message = _problem(exc, settings)
            if status >= 500:
                logger.error("%s %s: %s", request.method, request.url.path, message)
                logger.debug("%s", settings.redact(traceback.format_exc()))
            if request.url.path.endswith(".json"):
                return JSONResponse({"error": message}, status)
            if request.url.path.endswith(".svg"):
                return PlainTextResponse(message, status)
            return render(request, settings, "error.html", status, status=status, message=message)

    run.__name__ = run.__qualname__ = endpoint.__name__
    run.__doc__ = endpoint.__doc__
    return run


class Guard:
    """ASGI middleware: refuses a request naming another host on a loopback server (DNS
    rebinding), and puts the security headers on every response."""

    def __init__(self, app: ASGIApp, settings: WebSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_host(Request(scope), self.settings)
        except Refused as refused:
            response = PlainTextResponse(refused.message, refused.status, headers=SECURITY_HEADERS)
            await response(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_secured)


async def _home(request: Request) -> Response:
    return RedirectResponse("/sessions", 303)


def create_app(settings: WebSettings) -> Starlette:
    """The inspector of the sessions ``settings.open_session`` opens."""
    routes = [
        Route("/", _home),
        Route("/sessions", guarded(pages.sessions)),
        Route("/session", guarded(pages.session)),
        Route("/session/live.json", guarded(pages.live_state)),
        Route("/session/graph.svg", guarded(pages.graph)),
        Route("/session/instance.json", guarded(pages.instance_json)),
        Route("/session/replay", guarded(actions.replay), methods=["POST"]),
        Route("/session/skip", guarded(actions.skip), methods=["POST"]),
        Route("/session/resolve-logs", guarded(actions.resolve_logs), methods=["POST"]),
        Route("/session/recover", guarded(actions.recover), methods=["POST"]),
        Route("/login", guarded(pages.login_page)),
        Route("/login", guarded(actions.login), methods=["POST"]),
        Route("/logout", guarded(actions.logout), methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("triggerhooks.web", "static")]), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.settings = settings
    app.add_middleware(Guard, settings=settings)
    return app
