"""The web inspector (``triggerhooks web``, the ``triggerhooks[web]`` extra): a small
Starlette application that lists the sessions of a storage and shows each one (its
workflow coloured by status, its instances, why a task has not run), follows it live, and,
when started with a token, replays, skips, resolves logs and recovers.

The modules: ``options`` (what is served, and how), ``inspect`` (the read side: summaries
and session pages), ``auth`` (the token, login cookie, CSRF and origin checks), ``forms``
(bounded form bodies), ``rendering`` (templates and headers), ``pages`` and ``actions``
(the endpoints), ``app`` (the application), ``server`` (running it with uvicorn).
"""

from __future__ import annotations

from .app import create_app
from .options import TOKEN_ENV, WebSettings

__all__ = ["TOKEN_ENV", "WebSettings", "create_app"]
