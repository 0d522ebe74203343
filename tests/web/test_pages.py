"""The inspector's pages on each backend: the sessions list (summaries, pages, the prefix
filter), a session (picture, tasks, instances, details, why), its live state, an
instance's JSON; unknown sessions are 404s."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from tests.helpers import GRAPHVIZ, needs_dot
from tests.web.helpers import BASE, SHOP, failed_order, rows, tags
from triggerhooks import TriggerManager
from triggerhooks.core.explain import NESTED
from triggerhooks.storages import SqliteStorageBackend, StorageBackend
from triggerhooks.testing.contract import StorageFactory
from triggerhooks.web import WebSettings, create_app
from triggerhooks.web.inspect import last_change, summarize


def test_the_home_page_leads_to_the_sessions(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/sessions")


def test_the_sessions_list_summarises_each_session(client: TestClient,
                                                   make_session: StorageFactory) -> None:
    failed_order(make_session, "order-1")
    done = TriggerManager(make_session("order-2"))
    done.update_configuration({"t_echo": {"after": ["go"], "run": "tests.echo"}})
    done.fire("go")
    TriggerManager(make_session("order-3")).fire("early")  # fired, nothing configured
    response = client.get("/sessions")
    assert response.status_code == 200
    table = rows(response.text, "sessions")
    assert table[0][:8] == ["session", "tasks", "resolved", "failed", "running", "waiting",
                            "instances", "finalized"]
    by_uid = {row[0]: row[1:8] for row in table[1:]}
    assert by_uid == {"order-1": ["2", "0", "1", "0", "1", "1", "no"],
                      "order-2": ["1", "1", "0", "0", "0", "1", "finalized"],
                      "order-3": ["0", "0", "0", "0", "0", "0", "no"]}
    created, changed = table[1][8:10]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", created) and changed >= created


def _next_link(html: str) -> str | None:
    return next((attrs["href"] for tag, attrs in tags(html)
                 if tag == "a" and attrs.get("rel") == "next"), None)


def test_the_sessions_list_pages_and_filters(client: TestClient, make_session: StorageFactory,
                                             backend: str) -> None:
    uids = [f"a-{index}" for index in range(7)] + ["b-1", "b-2"]
    for uid in uids:
        TriggerManager(make_session(uid)).fire("x")
    listed: list[str] = []
    link: str | None = "/sessions?prefix=a-&limit=3"
    pages = 0
    while link is not None:
        response = client.get(link)
        assert response.status_code == 200
        page = [row[0] for row in rows(response.text, "sessions")[1:]]
        assert len(page) <= 3
        listed += page
        link = _next_link(response.text)
        pages += 1
        if link is not None:  # the next page keeps the filter and the size
            query = parse_qs(urlsplit(link).query)
            assert (query["prefix"], query["limit"]) == (["a-"], ["3"])
            assert "first page" in client.get(link).text
    assert sorted(listed) == uids[:7] and len(listed) == 7
    assert pages <= 4 if backend == "redis" else pages == 3
    assert [row[0] for row in rows(client.get("/sessions?prefix=b").text, "sessions")[1:]] == [
        "b-1", "b-2"]
    assert "No session whose uid starts with" in client.get("/sessions?prefix=zzz").text


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "limit=%C2%B2"])
def test_a_page_size_out_of_range_is_a_bad_request(client: TestClient, query: str) -> None:
    response = client.get(f"/sessions?{query}")
    assert response.status_code == 400
    assert "?limit= is a whole number from 1 to 200" in response.text


def test_a_redis_cursor_that_is_not_one_is_a_bad_request(client: TestClient, backend: str,
                                                         make_session: StorageFactory) -> None:
    TriggerManager(make_session("s")).fire("x")
    response = client.get("/sessions?cursor=not-a-cursor")
    if backend == "redis":
        assert response.status_code == 400 and "not a page cursor" in response.text
    else:  # a uid: the sessions after it
        assert response.status_code == 200


def test_a_session_page_shows_its_picture_tasks_and_instances(
        client: TestClient, make_session: StorageFactory) -> None:
    failed_order(make_session)
    response = client.get("/session?uid=order-17")
    assert response.status_code == 200
    html = response.text
    assert '<img src="/session/graph.svg?uid=order-17&amp;v=' in html
    tasks = rows(html, "tasks")
    assert [row[:4] for row in tasks[1:]] == [
        ["t_charge", "tests.web.charge", "after orderPlaced", "-"],
        ["t_ship", "tests.echo", "after t_charge, addressConfirmed", "t_charge, addressConfirmed"]]
    assert tasks[1][4] == "1 failed" and tasks[2][4] == "none yet"
    instances = [row for row in rows(html, "instances")[1:] if len(row) > 1]
    assert len(instances) == 1
    name, status, waiting, level, changed, detail = instances[0]
    assert (name, status, waiting, level) == ("t_charge#0", "failed", "", "")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", changed)
    assert detail == "ValueError: card 1111 declined"
    # the details: kwargs, the traceback, the timestamps, every metadata
    assert '&#34;card&#34;: &#34;1111&#34;' in html
    assert "Traceback (most recent call last)" in html and "raise ValueError" in html
    assert "exception ValueError" in html and "all metadata" in html
    assert "Triggers fired" in html and '<span class="trigger">orderPlaced</span>' in html


def test_a_waiting_instance_says_what_it_waits_for(client: TestClient,
                                                   make_session: StorageFactory) -> None:
    manager = TriggerManager(make_session("w"))
    manager.update_configuration({
        "t_pages": {"after": ["consent", "t_x"], "andEvery": "page", "run": "tests.echo"},
        "t_x": {"after": ["never"], "run": "tests.echo"}})
    manager.fire("page", {"n": 1})
    instances = [row for row in rows(client.get("/session?uid=w").text, "instances")[1:]
                 if len(row) > 1]
    assert [row[:3] for row in instances] == [["t_pages#0", "unstarted", "consent, t_x"]]
    manager.fire("consent")
    manager.update_configuration({"t_more": {"after": ["x"], "andEvery": "page",
                                             "run": "tests.echo"}})
    manager.fire("x")  # t_more#0 waits for its first page
    instances = [row for row in rows(client.get("/session?uid=w").text, "instances")[1:]
                 if len(row) > 1]
    assert [row[:3] for row in instances] == [["t_pages#0", "unstarted", "t_x"],
                                              ["t_more#0", "unstarted", "every page"]]


def test_the_explainer_answers_for_any_task(client: TestClient,
                                            make_session: StorageFactory) -> None:
    failed_order(make_session)
    html = client.get("/session?uid=order-17&why=t_ship").text
    assert "<strong>t_ship</strong> — <span class=\"state state-waiting\">waiting</span>" in html
    assert "after “t_charge” (a task) not finished" in html
    assert "after “addressConfirmed” never fired" in html
    causes = html.split("root causes")[1].split("</ul>")[0]
    assert "t_charge#0: failed with ValueError: replay or skip it" in causes
    assert "trigger &#39;addressConfirmed&#39; never fired" in causes
    assert '<option value="t_ship" selected>' in html
    unknown = client.get("/session?uid=order-17&why=t_nope")
    assert unknown.status_code == 200 and "has no task named &#39;t_nope&#39;" in unknown.text


def test_the_explainer_shows_each_task_once_and_a_long_chain_cut(
        client: TestClient, make_session: StorageFactory) -> None:
    """As the command line's tree: a task reached along many paths (layers of tasks that
    each wait for both of the layer above: 2**14 paths) is shown in full once, and a
    chain of 300 cascades is cut past ``NESTED`` tasks with a link to ask further up;
    neither takes a page of megabytes, a minute, or Python's recursion limit."""
    lattice: dict[str, Any] = {"a0": {"after": ["go"], "run": "tests.noop"},
                               "b0": {"after": ["go"], "run": "tests.noop"}}
    for layer in range(1, 15):
        for name in ("a", "b"):
            lattice[f"{name}{layer}"] = {"after": [f"a{layer - 1}", f"b{layer - 1}"],
                                         "run": "tests.noop"}
    TriggerManager(make_session("lattice")).update_configuration(lattice)
    response = client.get("/session?uid=lattice&why=a14")
    assert response.status_code == 200 and len(response.text) < 500_000
    # b0 in full under a1, then "explained above" under b1: not once per path
    assert response.text.count("<strong>b0</strong>") == 2 and "(explained above)" in response.text
    chain = {f"t_{i}": {"after": [f"t_{i - 1}" if i else "go"], "run": "tests.noop"}
             for i in range(300)}
    TriggerManager(make_session("chain")).update_configuration(chain)
    response = client.get("/session?uid=chain&why=t_299")
    assert response.status_code == 200, response.text[-300:]
    assert "<strong>t_249</strong>" in response.text and "<strong>t_0</strong>" not in response.text
    assert ("a", {"href": f"/session?uid=chain&why=t_{299 - NESTED - 1}#why"}) in tags(response.text)
    assert "trigger &#39;go&#39; never fired" in response.text.split("root causes")[1]


def test_an_unknown_session_is_not_found(client: TestClient) -> None:
    for path in ("/session?uid=nope", "/session/live.json?uid=nope",
                 "/session/graph.svg?uid=nope", "/session/instance.json?uid=nope&name=t%230"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "no session" in response.text, path
    assert client.get("/session/live.json?uid=nope").json() == {
        "error": "no session 'nope' in sqlite:///" + str(Path("shown.sqlite3").resolve())}
    missing = client.get("/session")
    assert missing.status_code == 400 and "name a session" in missing.text


def test_an_unknown_instance_is_not_found(client: TestClient,
                                          make_session: StorageFactory) -> None:
    failed_order(make_session)
    response = client.get("/session/instance.json?uid=order-17&name=t_charge%239")
    assert response.status_code == 404
    assert "has no instance 't_charge#9'" in response.json()["error"]


def test_an_instance_as_json_holds_everything(client: TestClient,
                                              make_session: StorageFactory) -> None:
    failed_order(make_session)
    data = client.get("/session/instance.json?uid=order-17&name=t_charge%230").json()
    assert data["session"] == "order-17" and data["name"] == "t_charge#0"
    assert data["status"] == "failed" and data["kwargs"] == {"orderPlaced": {"card": "1111"}}
    assert data["metadata"]["exceptionType"] == "ValueError"


@needs_dot
def test_the_picture_is_svg_coloured_by_status(client: TestClient,
                                               make_session: StorageFactory) -> None:
    failed_order(make_session)
    response = client.get("/session/graph.svg?uid=order-17")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    svg = response.text
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "t_charge" in svg and "#0 failed" in svg and "#fca5a5" in svg  # failed is red
    assert "<script" not in svg


def test_the_live_state_changes_when_the_session_does(client: TestClient,
                                                      make_session: StorageFactory) -> None:
    manager = failed_order(make_session)
    first = client.get("/session/live.json?uid=order-17").json()
    assert set(first) == {"version", "finalized"} and first["finalized"] is False
    assert client.get("/session/live.json?uid=order-17").json() == first
    page = client.get("/session?uid=order-17").text
    assert f'data-version="{first["version"]}"' in page
    manager.fire("addressConfirmed")
    second = client.get("/session/live.json?uid=order-17").json()
    assert second["version"] != first["version"]
    manager.replay_failed_instance("t_charge#0", {"orderPlaced": {"card": "4242"}})
    third = client.get("/session/live.json?uid=order-17").json()
    assert third["version"] != second["version"] and third["finalized"] is True
    fragment = client.get("/session?uid=order-17&fragment=1").text
    assert fragment.lstrip().startswith("<section id=\"live\"")
    assert "<html" not in fragment and f'data-version="{third["version"]}"' in fragment
    assert "t_charge#1" in fragment and "finalized" in fragment


def test_a_session_of_many_instances_is_shown_a_page_at_a_time(
        client: TestClient, make_session: StorageFactory) -> None:
    storage = make_session("many")
    manager = TriggerManager(storage)
    manager.update_configuration({"t_page": {"andEvery": "page", "run": "tests.noop"}})
    for _ in range(230):
        manager.fire("page")
    html = client.get("/session?uid=many").text
    shown = [row[0] for row in rows(html, "instances")[1:] if len(row) > 1]
    assert shown == [f"t_page#{index}" for index in range(200)]
    assert "instances 1 to 200 of 230" in html
    rest = client.get("/session?uid=many&at=200").text
    assert [row[0] for row in rows(rest, "instances")[1:] if len(row) > 1] == [
        f"t_page#{index}" for index in range(200, 230)]
    assert "instances 201 to 230 of 230" in rest and ">previous</a>" in rest


def test_a_page_past_the_last_instance_says_so_and_leads_back(
        client: TestClient, make_session: StorageFactory) -> None:
    """``?at=`` past the end (an old link, a session cleared meanwhile) is not "no instance
    yet": the page says how many there are and links to the first ones."""
    failed_order(make_session, "order-1")
    html = client.get("/session?uid=order-1&at=500").text
    assert "No instance yet" not in html
    assert "No instance from 501 on: the session has 1." in html
    assert ("a", {"href": "/session?uid=order-1"}) in tags(html)


def test_a_summary_reads_the_bookkeeping_not_every_instance(
        make_session: StorageFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = make_session("big")
    manager = TriggerManager(storage)
    manager.update_configuration({"t_page": {"andEvery": "page", "run": "tests.noop"},
                                  "t_fail": {"andEvery": "page", "run": "tests.boom"},
                                  "t_wait": {"after": ["never"], "andEvery": "page",
                                             "run": "tests.noop"}})
    for _ in range(300):
        manager.fire("page")
    read: list[str] = []
    load = type(storage)._load_instances

    def counting(self: StorageBackend, names: list[str] | None = None) -> object:
        read.extend(names if names is not None else ["<all>"])
        return load(self, names)

    monkeypatch.setattr(type(storage), "_load_instances", counting)
    summary = summarize("big", storage)
    assert (summary.tasks, summary.resolved, summary.failed, summary.waiting,
            summary.instances) == (3, 1, 1, 1, 900)
    # each task's newest instance, and the 20 newest failed ones: not the 300 waiting ones
    assert sorted(read) == sorted([*(f"t_fail#{i}" for i in range(280, 300)), "t_page#299",
                                   "t_wait#299"])
    assert summary.changed == max(last_change(i) for i in storage.instances.values())


def test_looking_at_a_sqlite_file_that_does_not_exist_does_not_create_it(tmp_path: Path) -> None:
    path = tmp_path / "not-yet.sqlite3"
    settings = WebSettings(lambda uid: SqliteStorageBackend(uid, path), f"sqlite:///{path}")
    client = TestClient(create_app(settings), base_url=BASE)
    assert "No session in this storage" in client.get("/sessions").text
    assert client.get("/session?uid=s").status_code == 404
    assert not path.exists()


def test_one_unreadable_session_does_not_hide_the_others(tmp_path: Path) -> None:
    """A session whose stored data cannot be read (a damaged row, data another version
    wrote) is a line that says so: the list still shows every other session."""
    path = tmp_path / "shop.sqlite3"
    settings = WebSettings(lambda uid: SqliteStorageBackend(uid, path), f"sqlite:///{path}")
    for uid in ("order-1", "order-2", "order-3"):
        failed_order(settings.open_session, uid)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE th_states SET state = '[1, 2]' WHERE uid = 'order-2'")
    client = TestClient(create_app(settings), base_url=BASE)
    response = client.get("/sessions")
    assert response.status_code == 200
    by_uid = {row[0]: row[1:] for row in rows(response.text, "sessions")[1:]}
    assert by_uid["order-1"][:3] == by_uid["order-3"][:3] == ["2", "0", "1"]
    assert by_uid["order-2"][0].startswith("cannot be read: ")


def test_odd_uids_travel_and_are_escaped(client: TestClient, make_session: StorageFactory) -> None:
    uid = "a/b %2F?x=1&y#z <script>alert('uid')</script> \"q\""
    manager = TriggerManager(make_session(uid))
    manager.update_configuration({"t_<b>x</b>": {"after": ["<i>go</i>"], "run": "tests.boom"}})
    manager.fire("<i>go</i>", {"note": "<script>alert('kwargs')</script>"})
    listing = client.get("/sessions").text
    assert "<script>" not in listing and "&lt;script&gt;alert(&#39;uid&#39;)" in listing
    link = next(attrs["href"] for tag, attrs in tags(listing)
                if tag == "a" and attrs["href"].startswith("/session?"))
    assert parse_qs(urlsplit(link).query)["uid"] == [uid]
    page = client.get(link)
    assert page.status_code == 200
    assert "<script>" not in page.text and "<b>x</b>" not in page.text and "<i>go</i>" not in page.text
    assert "t_&lt;b&gt;x&lt;/b&gt;#0" in page.text
    assert client.get("/session/graph.svg", params={"uid": uid}).status_code == (
        200 if GRAPHVIZ else 503)
    explained = client.get("/session", params={"uid": uid, "why": "t_<b>x</b>"}).text
    assert "<b>x</b>" not in explained and "root causes" in explained


def test_huge_kwargs_are_cut_on_the_page_and_whole_in_the_json(
        client: TestClient, make_session: StorageFactory) -> None:
    manager = TriggerManager(make_session("huge"))
    manager.update_configuration(SHOP)
    manager.fire("orderPlaced", {"card": "1111", "blob": "x" * 3_000_000})
    page = client.get("/session?uid=huge")
    assert page.status_code == 200 and len(page.text) < 200_000
    assert "characters: the first shown" in page.text
    whole = client.get("/session/instance.json?uid=huge&name=t_charge%230").json()
    assert len(whole["kwargs"]["orderPlaced"]["blob"]) == 3_000_000


@pytest.mark.parametrize("path", ["/sessions", "/session?uid=order-17", "/login",
                                  "/session?uid=nope"])
def test_pages_load_nothing_from_elsewhere(client: TestClient, make_session: StorageFactory,
                                           path: str) -> None:
    failed_order(make_session)
    html = client.get(path).text
    for tag, attrs in tags(html):
        for name in ("src", "href", "action"):
            if name in attrs:
                target = attrs[name]
                assert target.startswith("/") and not target.startswith("//"), (tag, name, target)
    for asset in ("/static/inspector.css", "/static/live.js", "/static/favicon.svg"):
        response = client.get(asset)
        assert response.status_code == 200, asset
        text = response.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "http:" not in text and "https:" not in text and "@import" not in text, asset
        assert "url(" not in text, asset


@pytest.mark.parametrize("path", ["/sessions", "/session?uid=order-17", "/session?uid=nope",
                                  "/session/live.json?uid=order-17", "/static/live.js"])
def test_every_response_carries_the_security_headers(client: TestClient,
                                                     make_session: StorageFactory,
                                                     path: str) -> None:
    failed_order(make_session)
    headers = client.get(path).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


@pytest.mark.parametrize("uid", ["nul\x00uid", "line\nbreak", "tab\tand  spaces",
                                 "\u202eright-to-left", "emoji 🎉", "%41%2F", "?uid=other"])
def test_control_characters_and_escapes_in_a_uid(client: TestClient,
                                                 make_session: StorageFactory, uid: str) -> None:
    failed_order(make_session, uid)
    links = [attrs["href"] for tag, attrs in tags(client.get("/sessions").text)
             if tag == "a" and attrs["href"].startswith("/session?")]
    assert [parse_qs(urlsplit(link).query)["uid"] for link in links] == [[uid]]
    assert client.get(links[0]).status_code == 200
    assert client.get("/session/graph.svg", params={"uid": uid}).status_code == (
        200 if GRAPHVIZ else 503)
    assert client.get("/session/live.json", params={"uid": uid}).status_code == 200
