"""A password in the storage URL never reaches a page, a header or a log line, and the
server's token never reaches a page or a cookie."""

from __future__ import annotations

import logging
from html import unescape

import pytest
from starlette.testclient import TestClient

from tests.web.helpers import BASE, TOKEN, bearer, client_for, csrf_of, failed_order
from triggerhooks.storages import open_storage
from triggerhooks.storages.urls import shown_url
from triggerhooks.testing.contract import StorageFactory
from triggerhooks.web import WebSettings, create_app

SECRET = "s3cr3t-Pa55"


def everything(response: object) -> str:
    """A response's status line, headers and body as one text to search."""
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.multi_items())  # type: ignore[attr-defined]
    return f"{response.status_code}\n{headers}\n{response.text}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", [f"redis://:{SECRET}@127.0.0.1:6379/0",
                                 f"redis://user:{SECRET}@127.0.0.1:6379/0?prefix=x",
                                 f"rediss://127.0.0.1:6380/0?password={SECRET}",
                                 f"redis://:{SECRET.replace('5', '%35')}@127.0.0.1:6379/0"])
def test_the_storage_url_is_shown_without_its_password(make_session: StorageFactory,
                                                       url: str) -> None:
    failed_order(make_session)
    client = client_for(make_session, url=url)
    for path in ("/sessions", "/session?uid=order-17", "/session?uid=nope", "/login",
                 "/session/live.json?uid=nope", "/session/graph.svg?uid=order-17"):
        shown = everything(client.get(path))
        assert SECRET not in shown and "s3cr3t" not in shown, path
    assert shown_url(url) in unescape(client.get("/sessions").text)
    assert "***" in shown_url(url)


@pytest.mark.parametrize("url", [f"redis://:{SECRET}@127.0.0.1:1/0",
                                 f"sqlite:///sessions.sqlite3?password={SECRET}"])
def test_a_storage_that_fails_says_so_without_the_password(
        url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Redis does not answer, SQLite refuses an option it does not know: the message of
    each names the URL, redacted."""
    settings = WebSettings(lambda uid: open_storage(url, uid), url, TOKEN)
    client = TestClient(create_app(settings), base_url=BASE)
    with caplog.at_level(logging.DEBUG):
        for path in ("/sessions", "/session?uid=s", "/session/live.json?uid=s"):
            response = client.get(path)
            assert response.status_code in (400, 503), (path, response.text)
            assert SECRET not in everything(response), path
        response = client.post("/session/replay", data={"uid": "s", "instance": "t#0"},
                               headers=bearer())
        assert response.status_code in (400, 503) and SECRET not in everything(response)
    assert SECRET not in caplog.text


def test_an_unexpected_error_is_logged_redacted(make_session: StorageFactory,
                                                caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:6379/0"

    def broken(uid: str) -> object:
        raise RuntimeError(f"cannot reach {url}")

    client = TestClient(create_app(WebSettings(broken, url)), base_url=BASE)  # type: ignore[arg-type]
    with caplog.at_level(logging.DEBUG, logger="triggerhooks.web"):
        response = client.get("/session?uid=s")
    assert response.status_code == 500
    assert "unexpected RuntimeError: cannot reach redis://:***@127.0.0.1:6379/0" in response.text
    assert SECRET not in everything(response) and SECRET not in caplog.text
    assert "RuntimeError" in caplog.text and "Traceback" in caplog.text


def test_the_token_never_reaches_a_page_or_a_cookie(client: TestClient,
                                                    make_session: StorageFactory) -> None:
    failed_order(make_session)
    page = client.get("/login")
    logged = client.post("/login", data={"csrf": csrf_of(page.text), "token": TOKEN},
                         follow_redirects=False)
    assert logged.status_code == 303
    for response in (page, logged, client.get("/session?uid=order-17"), client.get("/sessions"),
                     client.post("/session/replay", data={"uid": "order-17"})):
        assert TOKEN not in everything(response)
    assert all(TOKEN not in value for value in client.cookies.values())


def test_a_short_token_is_refused(make_session: StorageFactory) -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        WebSettings(make_session, "memory://", "short")
