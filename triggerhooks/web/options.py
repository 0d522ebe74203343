"""What a web inspector serves: where sessions live, who may act on them, how it binds."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from ..storages import StorageBackend
from ..storages.urls import redact_text, shown_url

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "MIN_TOKEN_LENGTH", "TOKEN_ENV", "WebSettings"]

TOKEN_ENV = "TRIGGERHOOKS_WEB_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MIN_TOKEN_LENGTH = 16
"""A shorter token is refused: it would be guessed."""

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@dataclass(frozen=True)
class WebSettings:
    """The inspector's settings.

    ``open_session(uid)`` opens the storage of a session (``open_storage(url, uid)`` for
    the command line); ``storage_url`` is only shown, and only without its secrets.
    Without ``token`` the inspector is read-only; with it, actions need it.
    """

    open_session: Callable[[str], StorageBackend]
    storage_url: str
    token: str | None = None
    manager_key: str = "default"
    host: str = DEFAULT_HOST
    """The address the server binds: on a loopback address only requests naming a
    loopback host are served (no DNS rebinding)."""
    page_size: int = 50
    poll_seconds: float = 2.0
    """How often a session page asks whether the session changed."""
    secret: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the web token must be at least {MIN_TOKEN_LENGTH} characters long "
                             "(python -c 'import secrets; print(secrets.token_urlsafe())' makes one)")
        # Cookies and CSRF tokens are derived from the token, never the token itself.
        key = hashlib.sha256(b"triggerhooks-web:" + (self.token or "").encode()).digest()
        object.__setattr__(self, "secret", key)

    @property
    def read_only(self) -> bool:
        return self.token is None

    @property
    def shown_url(self) -> str:
        """The storage URL for people: no password, the absolute SQLite file."""
        return shown_url(self.storage_url)

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK or self.host.startswith("127.")

    def redact(self, text: str) -> str:
        """``text`` without any secret of the storage URL or the token."""
        text = redact_text(text, self.storage_url)
        return text.replace(self.token, "***") if self.token else text

    def sign(self, purpose: str, value: str = "") -> str:
        """An HMAC of ``value`` for ``purpose`` under the token's secret (hex)."""
        return hmac.new(self.secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()
