"""Pages from the package's Jinja templates: every value escaped, every link built here,
the security headers on every response."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..graph import STATUS_COLOURS
from .auth import check_login, csrf_token, set_csrf_cookie
from .options import WebSettings

__all__ = ["SECURITY_HEADERS", "render", "short_time", "url"]

SECURITY_HEADERS = {
    # Everything a page loads is the inspector's own: no inline script, no other origin.
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def url(path: str, **params: Any) -> str:
    """``path`` with ``params`` as its query (empty ones left out), every value escaped."""
    query = urlencode({name: value for name, value in params.items()
                       if value is not None and value != ""})
    return f"{path}?{query}" if query else path


def short_time(stamp: object) -> str:
    """``YYYY-MM-DD HH:MM:SS`` of an ISO 8601 timestamp (``""`` for none)."""
    text = str(stamp or "")
    return text[:19].replace("T", " ")


_env = Environment(loader=PackageLoader("triggerhooks.web", "templates"), autoescape=True,
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.globals.update(url=url, status_colours=STATUS_COLOURS)
_env.filters["when"] = short_time


def _here(request: Request) -> str:
    """The path and query of the request, for a login form to come back to (the sessions
    list after a form was sent); never the bare part a live page swaps in (``fragment``),
    whose links must lead back to the whole page."""
    if request.method != "GET":
        return "/sessions"
    query = urlencode([(name, value) for name, value in request.query_params.multi_items()
                       if name != "fragment"])
    return request.url.path + (f"?{query}" if query else "")


def render(request: Request, settings: WebSettings, template: str, code: int = 200,
           **context: Any) -> HTMLResponse:
    """``template`` rendered with ``context`` and what every page shows (the storage URL
    without its secrets, read-only or logged in, the CSRF token of its forms)."""
    token = "" if settings.read_only else csrf_token(request, settings)
    html = _env.get_template(template).render(
        storage_url=settings.shown_url, read_only=settings.read_only, csrf=token,
        logged_in=check_login(request, settings), here=_here(request), **context)
    response = HTMLResponse(html, code)
    if token:
        set_csrf_cookie(response, request, token)
    return response
