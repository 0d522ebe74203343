"""The actions: replay a failed instance (with edited kwargs), skip it (with or without its
cascade), resolve an instance's logs, recover the session; and logging in and out.

Each is a POST that :func:`.auth.authorize` lets through only with the server's token,
from the inspector's own pages (and, with the login cookie, with the page's CSRF token).
Each answers with a redirect to the session page, which names what was done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..manager import TriggerManager
from ..runners import task_runners
from ..storages import StorageBackend
from ..task import trigger_tasks
from .auth import Refused, authorize, check_csrf, log_in, log_out, same_origin
from .forms import json_object, read_form
from .options import WebSettings
from .pages import existing, local_path, manager_of, settings_of
from .rendering import url

__all__ = ["login", "logout", "recover", "replay", "resolve_logs", "skip", "unregistered"]


def unregistered(storage: StorageBackend) -> list[str]:
    """The ``run`` and ``using`` names of the session's tasks that are not registered: an
    action that may run tasks is refused while any is, as the command line's are."""
    found = []
    for name, config in storage.tasks.items():
        if config.run not in trigger_tasks:
            found.append(f"{name}.run: unknown trigger task {config.run!r}")
        if config.using is not None and config.using not in task_runners:
            found.append(f"{name}.using: unknown task runner {config.using!r}")
    return found


Act = Callable[[TriggerManager, dict[str, str]], dict[str, Any]]


async def _act(request: Request, act: Act, runs_tasks: bool = True) -> Response:
    """Check the request, read its form, run ``act`` on the session's manager in a worker
    thread and redirect to the session page with what ``act`` returned."""
    settings = settings_of(request)
    needs_csrf = authorize(request, settings)  # before the body is read
    form = await read_form(request)
    if needs_csrf:
        check_csrf(request, form, settings)
    uid = form.get("uid", "")
    if not uid:
        raise Refused(400, "the form names no session (uid)")

    def run() -> dict[str, Any]:
        storage = existing(settings, uid)
        if runs_tasks:
            missing = unregistered(storage)
            if missing:
                raise Refused(409, "nothing was done: the session's tasks name what this server "
                                   "has not registered (start it with --import for the modules "
                                   "that define them): " + "; ".join(missing))
        return act(manager_of(settings, storage), form)

    done = await run_in_threadpool(run)
    return RedirectResponse(url("/session", uid=uid, **done), 303)


def _instance(form: dict[str, str]) -> str:
    name = form.get("instance", "")
    if not name:
        raise Refused(400, "the form names no instance")
    return name


def _replay(manager: TriggerManager, form: dict[str, str]) -> dict[str, Any]:
    name = _instance(form)
    kwargs = json_object(form.get("kwargs", ""), "kwargs")
    odd = [trigger for trigger, value in (kwargs or {}).items() if not isinstance(value, dict)]
    if odd:
        raise Refused(400, f"kwargs: the kwargs of each trigger are a JSON object; not those of "
                           f"{', '.join(map(repr, odd))}")
    merge = form.get("merge") == "on"
    if merge and kwargs is None:
        raise Refused(400, "merge needs kwargs to merge")
    copy = manager.replay_failed_instance(name, kwargs, merge=merge)
    status = manager.storage[copy.name].status.value
    return {"done": "replayed", "instance": name, "copy": copy.name, "status": status}


async def replay(request: Request) -> Response:
    """Replay a failed instance: its copy runs with the kwargs of the form (trigger name ->
    kwargs; empty: the failed instance's; ``merge``: only the triggers named change)."""
    return await _act(request, _replay)


def _skip(manager: TriggerManager, form: dict[str, str]) -> dict[str, Any]:
    name = _instance(form)
    cascade = form.get("cascade") == "on"
    result = json_object(form.get("result", ""), "result")
    if result is not None and not cascade:
        raise Refused(400, "a result is the kwargs of the cascade: tick cascade too")
    manager.skip_failed_instance(name, cascade=cascade, result=result)
    return {"done": "skipped-cascade" if cascade else "skipped", "instance": name}


async def skip(request: Request) -> Response:
    """Skip a failed instance; with ``cascade``, fire its task's name with ``result``."""
    return await _act(request, _skip)


def _resolve_logs(manager: TriggerManager, form: dict[str, str]) -> dict[str, Any]:
    name = _instance(form)
    manager.mark_instance_logs_resolved(name)
    return {"done": "resolved", "instance": name}


async def resolve_logs(request: Request) -> Response:
    """Mark an instance's logs as reviewed."""
    return await _act(request, _resolve_logs, runs_tasks=False)


def _recover(manager: TriggerManager, form: dict[str, str]) -> dict[str, Any]:
    return {"done": "recovered", "count": str(len(manager.recover()))}


async def recover(request: Request) -> Response:
    """Recover the session: hand stuck instances to their runners again, schedule what is
    ready, finalize what is done (``manager.recover()``)."""
    return await _act(request, _recover)


async def login(request: Request) -> Response:
    """Take the token typed into the login form; on success set the login cookie."""
    settings: WebSettings = settings_of(request)
    if not same_origin(request):
        raise Refused(403, "cross-site request refused")
    form = await read_form(request)
    response = RedirectResponse(local_path(form.get("next", "")), 303)
    log_in(request, form, settings, response)
    return response


async def logout(request: Request) -> Response:
    """Forget the login cookie."""
    if not same_origin(request):
        raise Refused(403, "cross-site request refused")
    response = RedirectResponse("/sessions", 303)
    log_out(request, response)
    return response
