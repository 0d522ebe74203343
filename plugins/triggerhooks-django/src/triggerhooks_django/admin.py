"""The admin of sessions: "triggerhooks > Sessions" on the admin index, read-only but for
replaying and skipping failed instances (see :mod:`.views` for the permissions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from . import views
from .models import Session

__all__ = ["SessionAdmin"]

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Session]
else:
    _ModelAdmin = admin.ModelAdmin  # not subscriptable at run time


@admin.register(Session)
class SessionAdmin(_ModelAdmin):
    """Pages of its own instead of the model's (sessions have no table): the list of
    sessions and a session's page."""

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self._list), name="triggerhooks_django_session_changelist"),
            path("view/", wrap(self._session), name="triggerhooks_django_session_view"),
        ]

    def _list(self, request: HttpRequest) -> HttpResponse:
        return views.session_list(request, self)

    def _session(self, request: HttpRequest) -> HttpResponse:
        return views.session_page(request, self)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
