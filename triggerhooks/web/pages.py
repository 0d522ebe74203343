"""The pages: the sessions list, a session (whole, or the part a live page swaps in), its
state for polling, its picture, an instance as JSON, and the login form.

Every endpoint reads the storage in a worker thread (storages block) and names a session
by the ``uid`` query parameter, so that any uid (``/``, ``%``, ``#``, quotes) travels
safely.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ..exceptions import InstanceNotFoundError, StorageUnavailableError
from ..manager import TriggerManager, trigger_managers
from ..serialization import JsonDict
from ..storages import StorageBackend
from .auth import Refused
from .inspect import (
    SessionNotFoundError,
    SessionPage,
    SessionSummary,
    graph_svg,
    holds_anything,
    missing_file,
    session_page,
    session_version,
    summarize,
)
from .options import WebSettings
from .rendering import render

__all__ = ["INSTANCE_ROWS", "LISTING_UID", "MAX_LIST", "existing", "graph", "instance_json",
           "live_state", "local_path", "login_page", "manager_of", "session", "sessions",
           "settings_of"]

logger = logging.getLogger(__name__)

LISTING_UID = "-"
"""The uid of the storage that lists the others (any storage of the store lists them all)."""
MAX_LIST = 200
"""The most sessions one page of the list shows."""
INSTANCE_ROWS = 200
"""Instances one session page shows; links page through the rest."""
GRAPH_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def settings_of(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.settings
    return settings


def _number(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name, "")
    if not text:
        return default
    if not text.isdigit() or not text.isascii() or not low <= int(text) <= high:
        raise Refused(400, f"?{name}= is a whole number from {low} to {high}")
    return int(text)


def _uid(request: Request) -> str:
    uid = request.query_params.get("uid", "")
    if not uid:
        raise Refused(400, "name a session: ?uid=...")
    return uid


def existing(settings: WebSettings, uid: str) -> StorageBackend:
    """The storage of session ``uid``, which must hold something."""
    storage = settings.open_session(uid)
    if not holds_anything(storage):
        raise SessionNotFoundError(f"no session {uid!r} in {settings.shown_url}")
    return storage


def manager_of(settings: WebSettings, storage: StorageBackend) -> TriggerManager:
    return trigger_managers.get(settings.manager_key, storage)


def local_path(target: str, default: str = "/sessions") -> str:
    """``target`` if it is a path of this server (never another site's address)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


# -- the sessions list --------------------------------------------------------------------------

def _list(settings: WebSettings, prefix: str, cursor: str | None,
          limit: int) -> tuple[list[SessionSummary], str | None]:
    lister = settings.open_session(LISTING_UID)
    if missing_file(lister):
        return [], None
    try:
        uids, following = lister.page_sessions(prefix, cursor, limit)
    except ValueError as exc:  # a cursor that is not the storage's
        raise Refused(400, str(exc)) from None
    return [_summary(settings, uid) for uid in uids], following


def _summary(settings: WebSettings, uid: str) -> SessionSummary:
    """The summary of session ``uid``, or its line saying why it cannot be read: one
    unreadable session (a damaged row, data another version wrote) does not hide the
    others. A storage that does not answer still fails the whole page."""
    try:
        return summarize(uid, settings.open_session(uid))
    except StorageUnavailableError:
        raise
    except Exception as exc:
        message = settings.redact(f"{type(exc).__name__}: {exc}")
        logger.warning("session %r cannot be summarized: %s", uid, message)
        return SessionSummary(uid, problem=message)


async def sessions(request: Request) -> Response:
    """``/sessions?prefix=&cursor=&limit=``: a page of sessions with their summaries."""
    settings = settings_of(request)
    prefix = request.query_params.get("prefix", "")
    cursor = request.query_params.get("cursor") or None
    limit = _number(request, "limit", settings.page_size, 1, MAX_LIST)
    rows, following = await run_in_threadpool(_list, settings, prefix, cursor, limit)
    return render(request, settings, "sessions.html", prefix=prefix, cursor=cursor or "",
                  limit=limit, rows=rows, following=following or "")


# -- one session ----------------------------------------------------------------------------------

def _explain(settings: WebSettings, storage: StorageBackend, task: str) -> JsonDict | str:
    """The explainer's answer as JSON data: each task in full once (a diamond of cascades
    is not drawn once per path) and nested at most ``NESTED`` tasks deep, as the command
    line's tree; or why there is none."""
    try:
        return manager_of(settings, storage).explain(task).to_json()
    except InstanceNotFoundError as exc:
        return str(exc.args[0])


def _read_session(settings: WebSettings, uid: str, offset: int,
                  why: str) -> tuple[SessionPage, JsonDict | str | None]:
    storage = existing(settings, uid)
    version = session_version(storage)  # first: a change made meanwhile shows on the next poll
    page = session_page(uid, storage, offset, INSTANCE_ROWS)
    page.version = version
    return page, (_explain(settings, storage, why) if why else None)


async def session(request: Request) -> Response:
    """``/session?uid=&at=&why=``: a session's picture, tasks and instances (with
    ``fragment=1``, only the part that a live page swaps in)."""
    settings = settings_of(request)
    uid = _uid(request)
    offset = _number(request, "at", 0, 0, 10**9)
    why = request.query_params.get("why", "")
    page, explanation = await run_in_threadpool(_read_session, settings, uid, offset, why)
    fragment = request.query_params.get("fragment") == "1"
    notice = {name: request.query_params.get(name, "")
              for name in ("done", "instance", "copy", "status", "count")}
    return render(request, settings, "_live.html" if fragment else "session.html", page=page,
                  why=why, explanation=explanation, notice=notice,
                  poll_ms=int(settings.poll_seconds * 1000))


def _live_state(settings: WebSettings, uid: str) -> dict[str, object]:
    storage = existing(settings, uid)
    return {"version": session_version(storage), "finalized": storage.is_finalized}


async def live_state(request: Request) -> Response:
    """``/session/live.json?uid=``: the session's version, which changes when it does."""
    settings = settings_of(request)
    return JSONResponse(await run_in_threadpool(_live_state, settings, _uid(request)))


def _graph(settings: WebSettings, uid: str) -> bytes:
    return graph_svg(uid, existing(settings, uid))


async def graph(request: Request) -> Response:
    """``/session/graph.svg?uid=``: the workflow coloured by status, drawn by Graphviz."""
    settings = settings_of(request)
    svg = await run_in_threadpool(_graph, settings, _uid(request))
    return Response(svg, media_type="image/svg+xml",
                    headers={"content-security-policy": GRAPH_CSP})


def _instance(settings: WebSettings, uid: str, name: str) -> dict[str, object]:
    instance = existing(settings, uid)[name]
    return {"session": uid, "name": instance.name, **instance.to_json()}


async def instance_json(request: Request) -> Response:
    """``/session/instance.json?uid=&name=``: one instance whole (kwargs and metadata)."""
    settings = settings_of(request)
    name = request.query_params.get("name", "")
    return JSONResponse(await run_in_threadpool(_instance, settings, _uid(request), name))


async def login_page(request: Request) -> Response:
    """``/login?next=``: the form that takes the inspector's token."""
    settings = settings_of(request)
    target = local_path(request.query_params.get("next", ""))
    if settings.read_only:
        return RedirectResponse(target, 303)
    return render(request, settings, "login.html", target=target)
