"""The admin's pages: the sessions of the storage, one session, and replay/skip of a failed instance.

Reading needs ``triggerhooks_django.view_session``; replaying
``triggerhooks_django.replay_instance``; skipping
``triggerhooks_django.skip_instance`` (a superuser has all three). Changes are
POSTs, CSRF-protected by the admin, and answered with a redirect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from triggerhooks import StorageBackend, TaskInstance, TriggerhooksError
from triggerhooks.ext import redact_url

from .managers import get_manager, open_session_storage, storage_url
from .pictures import session_picture

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

__all__ = ["ACTIONS", "LIST_URL", "PAGE_SIZE", "SESSION_URL", "session_list", "session_page",
           "session_url"]

LIST_URL = "admin:triggerhooks_django_session_changelist"
SESSION_URL = "admin:triggerhooks_django_session_view"
PAGE_SIZE = 100

ACTIONS = {"replay": "triggerhooks_django.replay_instance",
           "skip": "triggerhooks_django.skip_instance"}
"""Each action of the session page, and the permission it needs."""

_PROBLEMS = (TriggerhooksError, ImproperlyConfigured, NotImplementedError, OSError, ValueError)
"""Errors of a storage or of the settings, shown on the page (their messages never hold a
password: the core redacts storage URLs)."""


def session_url(uid: str) -> str:
    """The admin page of session ``uid`` (any characters: it travels in the query)."""
    return f"{reverse(SESSION_URL)}?{urlencode({'uid': uid})}"


def _shown_storage() -> str:
    try:
        url = storage_url()
    except ImproperlyConfigured as exc:
        return f"(not usable: {exc})"
    return redact_url(url) if url else "the default storage"


def _context(request: HttpRequest, model_admin: ModelAdmin[Any], title: str,
             **values: Any) -> dict[str, Any]:
    return {**model_admin.admin_site.each_context(request), "title": title,
            "opts": model_admin.model._meta, "storage": _shown_storage(), **values}


def session_list(request: HttpRequest, model_admin: ModelAdmin[Any]) -> HttpResponse:
    """Every session of the storage (``storage.session_uids()``), filtered by ``?q=``."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    wanted = request.GET.get("open", "").strip()
    if wanted:
        return HttpResponseRedirect(session_url(wanted))
    query = request.GET.get("q", "").strip()
    problem = ""
    uids: list[str] = []
    try:
        uids = sorted(open_session_storage("-").session_uids())
    except _PROBLEMS as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if query:
        uids = [uid for uid in uids if query.lower() in uid.lower()]
    page = Paginator(uids, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(uid, session_url(uid)) for uid in page]
    return TemplateResponse(request, "triggerhooks_django/session_list.html", _context(
        request, model_admin, "Sessions", page=page, rows=rows, query=query, problem=problem,
        count=len(uids)))


@dataclass(frozen=True)
class InstanceRow:
    """One instance as the session page shows it."""

    instance: TaskInstance
    last_change: str
    outcome: str
    details: str
    can_replay: bool
    can_skip: bool


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr)


def _outcome(instance: TaskInstance) -> str:
    meta = instance.metadata
    if "exceptionType" in meta:
        return str(meta["exceptionType"])
    if "result" in meta:
        text = json.dumps(meta["result"], ensure_ascii=False, default=repr)
        return text if len(text) <= 120 else text[:119] + "…"
    return ""


def _may(request: HttpRequest, permission: str) -> bool:
    """Whether the user has ``permission`` (a user model without permissions has none)."""
    has_perm = getattr(request.user, "has_perm", None)
    return callable(has_perm) and bool(has_perm(permission))


def _rows(storage: StorageBackend, request: HttpRequest) -> list[InstanceRow]:
    may = {action: _may(request, permission) for action, permission in ACTIONS.items()}
    rows = []
    for instance in storage.instances.values():
        stamps = instance.metadata.get("timestamps") or {}
        rows.append(InstanceRow(
            instance, max(map(str, stamps.values()), default=""), _outcome(instance),
            _json({"kwargs": instance.kwargs, "metadata": instance.metadata}),
            may["replay"] and instance.can_replay, may["skip"] and instance.can_skip))
    return rows


def session_page(request: HttpRequest, model_admin: ModelAdmin[Any]) -> HttpResponse:
    """One session: its picture, tasks, instances (with replay/skip) and fired triggers."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    uid = (request.POST if request.method == "POST" else request.GET).get("uid", "")
    if not uid:
        return HttpResponseRedirect(reverse(LIST_URL))
    if request.method == "POST":
        return _act(request, uid)
    try:
        storage = open_session_storage(uid)
        if not (storage.tasks or storage.latest_kwargs or storage.metadata):
            raise Http404("no such session")
        context = {
            "uid": uid, "metadata": storage.metadata, "finalized": storage.is_finalized,
            "tasks": list(storage.tasks.values()),
            "rows": Paginator(_rows(storage, request), PAGE_SIZE).get_page(
                request.GET.get("page")),
            "triggers": [(name, _json(kwargs)) for name, kwargs in storage.latest_kwargs.items()],
            "picture": session_picture(storage, title=f"session {uid}"),
            "session_url": session_url(uid), "actions": ACTIONS,
        }
    except _PROBLEMS as exc:
        return TemplateResponse(request, "triggerhooks_django/session.html", _context(
            request, model_admin, f"Session {uid}", uid=uid,
            problem=f"{type(exc).__name__}: {exc}"), status=503)
    return TemplateResponse(request, "triggerhooks_django/session.html", _context(
        request, model_admin, f"Session {uid}", **context))


def _act(request: HttpRequest, uid: str) -> HttpResponse:
    """Replay or skip the failed instance ``instance`` (POST), then back to the page."""
    action, name = request.POST.get("action", ""), request.POST.get("instance", "")
    if action not in ACTIONS or not name:
        return HttpResponseBadRequest("action must be replay or skip, with an instance")
    if not _may(request, ACTIONS[action]):
        raise PermissionDenied
    try:
        manager = get_manager(uid)
        if action == "replay":
            copy = manager.replay_failed_instance(name)
            done = f"Replayed {name} as {copy.name} ({manager.storage[copy.name].status.value})."
        else:
            manager.skip_failed_instance(name, cascade=request.POST.get("cascade") == "on")
            done = f"Skipped {name}" + (" and fired its cascade." if request.POST.get("cascade")
                                        == "on" else ".")
    except _PROBLEMS as exc:
        messages.error(request, f"Could not {action} {name}: {exc}")
    else:
        messages.success(request, done)
    return HttpResponseRedirect(session_url(uid))
