"""What the web inspector's tests share: a shop workflow whose charge fails, clients of an
inspector over a test's sessions, and readers of the pages' HTML."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from starlette.testclient import TestClient

from triggerhooks import TriggerManager
from triggerhooks.task import TaskContext, trigger_task
from triggerhooks.testing.contract import StorageFactory
from triggerhooks.web import WebSettings, create_app

TOKEN = "web-test-token-0123456789"
BASE = "http://127.0.0.1:8000"
"""The address the test client names (a loopback host: the inspector refuses others)."""
CHARGE = "tests.web.charge"
SHOP = {
    "t_charge": {"after": ["orderPlaced"], "run": CHARGE},
    "t_ship": {"after": ["t_charge", "addressConfirmed"], "run": "tests.echo"},
}


@trigger_task(name=CHARGE)
def charge(context: TaskContext) -> dict[str, Any]:
    """Declines every card but 4242: a failure that a replay with other kwargs fixes."""
    card = context.trigger_kwargs["orderPlaced"].get("card")
    if card != "4242":
        raise ValueError(f"card {card} declined")
    return {"charged": card}


def failed_order(make_session: StorageFactory, uid: str = "order-17",
                 card: str = "1111") -> TriggerManager:
    """A session whose t_charge#0 failed (card declined) and t_ship waits."""
    manager = TriggerManager(make_session(uid))
    manager.update_configuration(SHOP)
    manager.fire("orderPlaced", {"card": card})
    return manager


def client_for(make_session: StorageFactory, token: str | None = TOKEN,
               url: str = "sqlite:///shown.sqlite3") -> TestClient:
    settings = WebSettings(make_session, url, token)
    return TestClient(create_app(settings), base_url=BASE)


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


class _Tables(HTMLParser):
    """The cells' text of every table row, per table class."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: list[list[str]] | None = None
        self.row: list[str] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.current = self.tables.setdefault(dict(attrs).get("class") or "", [])
        elif tag == "tr" and self.current is not None:
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.row is not None and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr" and self.current is not None and self.row is not None:
            self.current.append(self.row)
            self.row = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def rows(html: str, table: str) -> list[list[str]]:
    """The rows (header row first) of the table of class ``table`` in a page."""
    parser = _Tables()
    parser.feed(html)
    return parser.tables.get(table, [])


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {name: value or "" for name, value in attrs}))


def tags(html: str) -> list[tuple[str, dict[str, str]]]:
    """``(tag, attributes)`` of every start tag of a page."""
    parser = _Tags()
    parser.feed(html)
    return parser.found


def csrf_of(html: str) -> str:
    """The CSRF token of a page's forms (one per page)."""
    tokens = {attrs.get("value", "") for tag, attrs in tags(html)
              if tag == "input" and attrs.get("name") == "csrf"}
    assert len(tokens) == 1, tokens
    return tokens.pop()
