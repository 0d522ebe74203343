"""Who may act: the server's token, a login cookie derived from it, CSRF tokens, and the
checks that refuse requests from other sites.

Reading is open to whoever reaches the server (bind it to a loopback address, the
default). Acting needs the token the server was started with, sent as
``Authorization: Bearer <token>`` or proven once through the login form, which sets an
HttpOnly, SameSite=Strict cookie. A form request must also carry the CSRF token of its
page (a signed double-submit cookie), and every action request must come from the
inspector's own origin (``Origin``, else ``Referer``). On a loopback address, a request
naming another host is refused outright (DNS rebinding).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from .options import LOOPBACK, WebSettings

# Refused is how an endpoint answers with an HTTP status, not an error of the Python API:
# it stays out of __all__, as the command line's click exceptions do.
__all__ = ["CSRF_COOKIE", "LOGIN_COOKIE", "authorize", "check_csrf", "check_host",
           "check_login", "csrf_token", "log_in", "log_out", "same_origin", "set_csrf_cookie"]

LOGIN_COOKIE = "th_login"
CSRF_COOKIE = "th_csrf"


class Refused(Exception):
    """A request the inspector will not serve: its HTTP status and why, for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _header_text(value: str) -> str:
    """A header's value as the UTF-8 text a client sent (Starlette decodes headers as
    Latin-1), so that a token with non-ASCII characters compares equal when sent as
    ``Authorization: Bearer``; a value that is not UTF-8 stays as it was decoded."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _hostname(host: str) -> str:
    """The name of a ``Host`` header, without its port (``[::1]:8000`` -> ``[::1]``)."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if ":" in host else host


def check_host(request: Request, settings: WebSettings) -> None:
    """On a loopback address, only a request naming a loopback host is served: a page of
    another site whose name was rebound to 127.0.0.1 names its own."""
    if settings.loopback and _hostname(request.headers.get("host", "")).lower() not in LOOPBACK:
        raise Refused(421, "this inspector answers only requests for 127.0.0.1, localhost "
                           "or [::1]")


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}".lower()


def same_origin(request: Request) -> bool:
    """The request comes from the inspector's own pages: its ``Origin`` (else the origin of
    its ``Referer``) is the inspector's. A request with neither (a script, ``curl``) passes
    this check; a browser sends ``Origin`` with every POST."""
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if not referer:
            return True
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return _equal(origin.lower(), _own_origin(request))


def csrf_token(request: Request, settings: WebSettings) -> str:
    """The CSRF token of the browser's cookie if it is valid, else a new one: a random
    nonce and its signature, so a cookie planted by another party is worthless."""
    known = request.cookies.get(CSRF_COOKIE, "")
    nonce, dot, signature = known.partition(".")
    if dot and nonce and _equal(signature, settings.sign("csrf", nonce)):
        return known
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{settings.sign('csrf', nonce)}"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=_secure(request), path="/")


def check_csrf(request: Request, form: Mapping[str, str], settings: WebSettings) -> None:
    """The form carries the CSRF token of the browser's cookie, and the cookie is ours."""
    sent = form.get("csrf", "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not sent or not cookie or not _equal(sent, cookie) or csrf_token(request, settings) != cookie:
        raise Refused(403, "the form's CSRF token is missing or stale: reload the page and "
                           "send it again")


def check_login(request: Request, settings: WebSettings) -> bool:
    """The browser holds the login cookie of this server's token."""
    cookie = request.cookies.get(LOGIN_COOKIE)
    return bool(settings.token and cookie and _equal(cookie, settings.sign("login")))


def authorize(request: Request, settings: WebSettings) -> bool:
    """Refuse (:class:`Refused`) an action request that may not act: the server is
    read-only, the request comes from another site, or it carries no token or a wrong
    one. Checked before the request's body is read. Returns whether the request relies on
    the login cookie, whose form must then pass :func:`check_csrf`."""
    if settings.token is None:
        raise Refused(403, "this inspector is read-only: start it with a token "
                           "(--token or $TRIGGERHOOKS_WEB_TOKEN) to allow actions")
    if not same_origin(request):
        raise Refused(403, "cross-site request refused: actions come only from the "
                           "inspector's own pages")
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, sent = header.partition(" ")
        if scheme.lower() != "bearer" or not _equal(_header_text(sent.strip()), settings.token):
            raise Refused(403, "wrong token")
        return False
    if not check_login(request, settings):
        raise Refused(401, "log in with the inspector's token first")
    return True


def log_in(request: Request, form: Mapping[str, str], settings: WebSettings,
           response: Response) -> None:
    """Check the login form (its origin, CSRF token and the token typed) and set the
    login cookie on ``response``."""
    if settings.token is None:
        raise Refused(403, "this inspector is read-only: there is nothing to log in to")
    if not same_origin(request):
        raise Refused(403, "cross-site request refused")
    check_csrf(request, form, settings)
    if not _equal(form.get("token", ""), settings.token):
        raise Refused(403, "wrong token")
    response.set_cookie(LOGIN_COOKIE, settings.sign("login"), httponly=True, samesite="strict",
                        secure=_secure(request), path="/")


def log_out(request: Request, response: Response) -> None:
    response.delete_cookie(LOGIN_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=_secure(request))
