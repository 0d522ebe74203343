"""The actions: replay (with edited kwargs), skip (with and without cascade), resolve logs
and recover, each done with the token; and every way they are refused — read-only, no
token, a wrong one, another site, a stale CSRF token, a bad form — changing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.web.helpers import SHOP, TOKEN, bearer, client_for, csrf_of, failed_order, tags
from triggerhooks import TriggerManager
from triggerhooks.task import TaskContext, TriggerTask, trigger_tasks
from triggerhooks.testing import HoldingRunner
from triggerhooks.testing.contract import StorageFactory
from triggerhooks.testing.registries import registered_class
from triggerhooks.testing.waiting import wait_for
from triggerhooks.web.auth import CSRF_COOKIE, LOGIN_COOKIE
from triggerhooks.web.forms import MAX_FORM_BYTES

ACTIONS = {
    "/session/replay": {"instance": "t_charge#0", "kwargs": '{"orderPlaced": {"card": "4242"}}'},
    "/session/skip": {"instance": "t_charge#0", "cascade": "on"},
    "/session/resolve-logs": {"instance": "t_charge#0"},
    "/session/recover": {},
}


def post(client: TestClient, path: str, data: dict[str, str], **kwargs: Any) -> Any:
    return client.post(path, data={"uid": "order-17", **data}, follow_redirects=False, **kwargs)


def words(html: str) -> str:
    """A page's text as a reader sees it: entities decoded, white space collapsed."""
    return " ".join(unescape(html).split())


def snapshot(manager: TriggerManager) -> dict[str, Any]:
    return manager.storage.debug_repr()


@pytest.fixture
def order(make_session: StorageFactory) -> Iterator[TriggerManager]:
    yield failed_order(make_session)


@pytest.mark.parametrize("path", ACTIONS)
def test_a_read_only_inspector_refuses_every_action(read_only: TestClient, order: TriggerManager,
                                                    path: str) -> None:
    before = snapshot(order)
    response = post(read_only, path, ACTIONS[path], headers=bearer())
    assert response.status_code == 403
    assert "read-only" in response.text
    assert snapshot(order) == before


def test_a_read_only_page_says_so_and_offers_no_action(read_only: TestClient,
                                                       order: TriggerManager) -> None:
    for path in ("/sessions", "/session?uid=order-17"):
        html = read_only.get(path).text
        assert "read-only" in html and "Start it with <code>--token</code>" in html
        assert 'method="post"' not in html and "log in" not in html
        assert CSRF_COOKIE not in read_only.cookies
    assert read_only.get("/login", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("path", ACTIONS)
@pytest.mark.parametrize(("headers", "status", "why"), [
    ({}, 401, "log in with the inspector's token first"),
    (bearer("a-wrong-token-0123456789"), 403, "wrong token"),
    (bearer(TOKEN[:-1]), 403, "wrong token"),
    ({"authorization": f"Basic {TOKEN}"}, 403, "wrong token"),
    ({"authorization": "Bearer"}, 403, "wrong token"),
    ({**bearer(), "origin": "http://evil.example"}, 403, "cross-site request refused"),
    ({**bearer(), "origin": "null"}, 403, "cross-site request refused"),
    ({**bearer(), "origin": "http://127.0.0.1:8001"}, 403, "cross-site request refused"),
    ({**bearer(), "referer": "http://evil.example/page"}, 403, "cross-site request refused"),
])
def test_an_action_without_the_token_or_from_another_site_is_refused(
        client: TestClient, order: TriggerManager, path: str, headers: dict[str, str],
        status: int, why: str) -> None:
    before = snapshot(order)
    response = post(client, path, ACTIONS[path], headers=headers)
    assert response.status_code == status
    assert why in unescape(response.text)
    assert snapshot(order) == before


def test_a_token_of_non_ascii_characters_acts_when_sent_as_bearer(
        make_session: StorageFactory, order: TriggerManager) -> None:
    """A token the server accepts (any characters) also works in the header a client sends
    it in, as UTF-8 (curl, httpx); the same bytes with one character changed do not."""
    token = "pässwört-0123456789-ü"
    client = client_for(make_session, token)
    before = snapshot(order)
    wrong = post(client, "/session/recover", {},
                 headers={"authorization": f"Bearer {token[:-1]}ö".encode()})
    assert wrong.status_code == 403 and snapshot(order) == before
    right = post(client, "/session/recover", {},
                 headers={"authorization": f"Bearer {token}".encode()})
    assert right.status_code == 303, right.text


def test_a_request_naming_another_host_is_refused(client: TestClient,
                                                  order: TriggerManager) -> None:
    """A page of another site whose name was rebound to 127.0.0.1 names its own host."""
    before = snapshot(order)
    for method, path in (("GET", "/sessions"), ("POST", "/session/replay")):
        response = client.request(method, path, headers={**bearer(), "host": "evil.example:8000"},
                                  data={"uid": "order-17", "instance": "t_charge#0"})
        assert response.status_code == 421
        assert "only requests for 127.0.0.1, localhost or [::1]" in response.text
    for host in ("localhost:8000", "[::1]:8000", "127.0.0.1"):
        assert client.get("/sessions", headers={"host": host}).status_code == 200
    assert snapshot(order) == before


def test_replay_with_edited_kwargs_runs_the_copy(client: TestClient, order: TriggerManager) -> None:
    response = post(client, "/session/replay", ACTIONS["/session/replay"], headers=bearer())
    assert response.status_code == 303
    assert response.headers["location"] == (
        "/session?uid=order-17&done=replayed&instance=t_charge%230&copy=t_charge%231"
        "&status=finished")
    storage = order.storage
    assert storage["t_charge#0"].status == "replayed"
    copy = storage["t_charge#1"]
    assert (copy.status, copy.metadata["parent"]) == ("finished", "t_charge#0")
    assert copy.kwargs == {"orderPlaced": {"card": "4242"}}
    page = words(client.get(response.headers["location"]).text)
    assert "Replayed t_charge#0: its copy t_charge#1 is finished." in page


def test_replay_without_kwargs_runs_the_copy_with_the_same(client: TestClient,
                                                           order: TriggerManager) -> None:
    response = post(client, "/session/replay", {"instance": "t_charge#0", "kwargs": "  "},
                    headers=bearer())
    assert response.status_code == 303 and response.headers["location"].endswith("status=failed")
    assert order.storage["t_charge#1"].kwargs == {"orderPlaced": {"card": "1111"}}


def test_replay_with_merge_changes_only_the_triggers_named(client: TestClient,
                                                           make_session: StorageFactory) -> None:
    manager = TriggerManager(make_session("order-17"))
    manager.update_configuration({"t_charge": {"after": ["orderPlaced", "paid"],
                                               "run": "tests.web.charge"}})
    manager.fire("paid", {"amount": 20})
    manager.fire("orderPlaced", {"card": "1111"})
    response = post(client, "/session/replay",
                    {**ACTIONS["/session/replay"], "merge": "on"}, headers=bearer())
    assert response.status_code == 303
    assert manager.storage["t_charge#1"].kwargs == {"orderPlaced": {"card": "4242"},
                                                    "paid": {"amount": 20}}
    refused = post(client, "/session/replay", {"instance": "t_charge#0", "merge": "on"},
                   headers=bearer())
    assert refused.status_code == 400 and "merge needs kwargs" in refused.text


def test_skip_without_cascade_leaves_the_waiting_task_waiting(
        client: TestClient, order: TriggerManager) -> None:
    order.fire("addressConfirmed")
    response = post(client, "/session/skip", {"instance": "t_charge#0"}, headers=bearer())
    assert response.status_code == 303 and "done=skipped&" in response.headers["location"]
    assert order.storage["t_charge#0"].status == "skipped"
    assert "t_ship#0" not in order.storage or order.storage["t_ship#0"].status == "unstarted"


def test_skip_with_cascade_runs_the_waiting_task_with_the_result(
        client: TestClient, order: TriggerManager) -> None:
    order.fire("addressConfirmed")
    response = post(client, "/session/skip", {"instance": "t_charge#0", "cascade": "on",
                                              "result": '{"charged": "by hand"}'},
                    headers=bearer())
    assert response.status_code == 303 and "done=skipped-cascade" in response.headers["location"]
    ship = order.storage["t_ship#0"]
    assert ship.status == "finished"
    assert ship.kwargs["t_charge"] == {"charged": "by hand"}
    page = words(client.get(response.headers["location"]).text)
    assert "Skipped t_charge#0 and fired its cascade." in page


def test_a_result_without_cascade_is_refused(client: TestClient, order: TriggerManager) -> None:
    before = snapshot(order)
    response = post(client, "/session/skip", {"instance": "t_charge#0", "result": "{}"},
                    headers=bearer())
    assert response.status_code == 400 and "tick cascade too" in response.text
    assert snapshot(order) == before


def test_resolve_logs_marks_them_reviewed(client: TestClient, make_session: StorageFactory) -> None:
    manager = TriggerManager(make_session("order-17"))
    manager.update_configuration({"t_warn": {"after": ["go"], "run": "triggerhooks.contract.warn"}})
    manager.fire("go")
    assert manager.storage.get_instances_with_unresolved_logs()
    response = post(client, "/session/resolve-logs", {"instance": "t_warn#0"}, headers=bearer())
    assert response.status_code == 303
    assert manager.storage.get_instances_with_unresolved_logs() == []
    assert manager.storage["t_warn#0"].logs_resolved


def test_recover_hands_a_lost_instance_off_again(
        client: TestClient, make_session: StorageFactory, held: type[HoldingRunner],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGGERHOOKS_CLAIM_GRACE_SECONDS", "0.001")
    manager = TriggerManager(make_session("order-17"))
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo", "using": held.name}})
    manager.fire("a")
    held.drop()  # the hand-off is lost, as with a process killed after the commit
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}})
    wait_for(manager.stuck, 10, "the instance to count as stuck", interval=0.001)
    response = post(client, "/session/recover", {}, headers=bearer())
    assert response.status_code == 303 and "done=recovered&count=" in response.headers["location"]
    assert manager.storage["t#0"].status == "finished"
    assert "Recovered the session: 1 thing(s) done." in words(
        client.get(response.headers["location"]).text)


def test_an_action_the_instance_does_not_allow_changes_nothing(
        client: TestClient, order: TriggerManager) -> None:
    order.replay_failed_instance("t_charge#0", {"orderPlaced": {"card": "4242"}})
    before = snapshot(order)
    for path in ("/session/replay", "/session/skip"):
        response = post(client, path, {"instance": "t_charge#1"}, headers=bearer())
        assert response.status_code == 409, path
        assert "t_charge#1" in response.text and "finished" in response.text
    unknown = post(client, "/session/replay", {"instance": "t_nope#0"}, headers=bearer())
    assert unknown.status_code == 404 and "t_nope#0" in unescape(unknown.text)
    gone = client.post("/session/replay", data={"uid": "nope", "instance": "t#0"},
                       headers=bearer())
    assert gone.status_code == 404
    assert snapshot(order) == before


class Later(TriggerTask, register=False):
    name = "tests.web.later"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {}


def test_a_session_whose_tasks_are_not_registered_is_not_replayed(
        client: TestClient, order: TriggerManager) -> None:
    with registered_class(trigger_tasks, Later.name, Later):
        order.update_configuration({**SHOP, "t_later": {"after": ["never"], "run": Later.name}})
    before = snapshot(order)  # registered where the session was configured, not here
    response = post(client, "/session/replay", ACTIONS["/session/replay"], headers=bearer())
    assert response.status_code == 409
    assert "t_later.run: unknown trigger task &#39;tests.web.later&#39;" in response.text
    assert "--import" in response.text
    assert snapshot(order) == before
    resolved = post(client, "/session/resolve-logs", {"instance": "t_charge#0"}, headers=bearer())
    assert resolved.status_code == 303  # runs no task: allowed


@pytest.mark.parametrize(("data", "status", "why"), [
    ({"kwargs": "{not json"}, 400, "kwargs: not valid JSON"),
    ({"kwargs": "[1, 2]"}, 400, "kwargs: must be a JSON object, not list"),
    ({"kwargs": "[" * 100_000 + "]" * 100_000}, 400, "nested too deeply"),
    ({"kwargs": '{"orderPlaced": {"x": NaN}}'}, 400, "NaN"),
    ({"kwargs": '{"orderPlaced": 3}'}, 400, "each trigger are a JSON object; not those of 'orderPlaced'"),
    ({"instance": ""}, 400, "the form names no instance"),
    ({"uid": ""}, 400, "the form names no session"),
])
def test_a_bad_form_is_refused_and_changes_nothing(client: TestClient, order: TriggerManager,
                                                   data: dict[str, str], status: int,
                                                   why: str) -> None:
    before = snapshot(order)
    response = post(client, "/session/replay", {**ACTIONS["/session/replay"], **data},
                    headers=bearer())
    assert response.status_code == status, response.text
    assert why in unescape(response.text)
    assert snapshot(order) == before


def test_a_form_too_large_or_not_url_encoded_is_refused(client: TestClient,
                                                        order: TriggerManager) -> None:
    before = snapshot(order)
    huge = "uid=order-17&instance=t_charge%230&kwargs=" + "x" * MAX_FORM_BYTES
    response = client.post("/session/replay", content=huge, headers={
        **bearer(), "content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    response = client.post("/session/replay", json={"uid": "order-17"}, headers=bearer())
    assert response.status_code == 415
    many = "&".join(f"f{index}=1" for index in range(100))
    response = client.post("/session/replay", content=many, headers={
        **bearer(), "content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert snapshot(order) == before


# -- the login form -----------------------------------------------------------------------------

def log_in(client: TestClient, token: str = TOKEN) -> Any:
    page = client.get("/login?next=/session%3Fuid%3Dorder-17")
    assert page.status_code == 200 and 'type="password"' in page.text
    return client.post("/login", data={"csrf": csrf_of(page.text), "token": token,
                                       "next": "/session?uid=order-17"}, follow_redirects=False)


def test_logging_in_sets_an_http_only_strict_cookie_and_allows_actions(
        client: TestClient, order: TriggerManager) -> None:
    response = log_in(client)
    assert response.status_code == 303 and response.headers["location"] == "/session?uid=order-17"
    cookie = next(value for name, value in response.headers.multi_items()
                  if name == "set-cookie" and value.startswith(LOGIN_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    page = client.get("/session?uid=order-17").text
    assert "log out" in page and 'action="/session/replay"' in page
    assert '<textarea name="kwargs" rows="6" spellcheck="false">{\n  &#34;orderPlaced&#34;' in page
    replayed = post(client, "/session/replay", {**ACTIONS["/session/replay"],
                                               "csrf": csrf_of(page)})
    assert replayed.status_code == 303
    assert order.storage["t_charge#1"].status == "finished"


def test_a_logged_in_form_needs_its_csrf_token(client: TestClient, order: TriggerManager) -> None:
    log_in(client)
    page = client.get("/session?uid=order-17").text
    before = snapshot(order)
    for token in ("", "forged", csrf_of(page) + "x"):
        response = post(client, "/session/replay", {**ACTIONS["/session/replay"], "csrf": token})
        assert response.status_code == 403 and "CSRF token" in response.text
    # a cookie and form value planted together by someone else: not signed by the server
    client.cookies.set(CSRF_COOKIE, "planted.0000")
    response = post(client, "/session/replay", {**ACTIONS["/session/replay"],
                                               "csrf": "planted.0000"})
    assert response.status_code == 403
    # the login cookie alone, from another site: refused before the form is read
    response = post(client, "/session/replay", {**ACTIONS["/session/replay"],
                                               "csrf": csrf_of(page)},
                    headers={"origin": "http://evil.example"})
    assert response.status_code == 403 and "cross-site" in response.text
    assert snapshot(order) == before


def test_a_login_link_swapped_in_by_a_live_page_leads_back_to_the_whole_page(
        client: TestClient, order: TriggerManager) -> None:
    """The part a live page swaps in is asked for with ``fragment=1``: its "log in to act"
    links come back to the session page, not to that bare part."""
    fragment = client.get("/session?uid=order-17&why=t_ship&fragment=1").text
    targets = {attrs["href"] for tag, attrs in tags(fragment)
               if tag == "a" and attrs.get("href", "").startswith("/login")}
    assert targets == {"/login?next=%2Fsession%3Fuid%3Dorder-17%26why%3Dt_ship"}


def test_a_wrong_login_sets_no_cookie(client: TestClient, order: TriggerManager) -> None:
    response = log_in(client, "a-wrong-token-0123456789")
    assert response.status_code == 403 and "wrong token" in response.text
    assert LOGIN_COOKIE not in response.headers.get("set-cookie", "")
    cross = client.post("/login", data={"token": TOKEN}, headers={"origin": "http://evil.example"})
    assert cross.status_code == 403
    no_csrf = client.post("/login", data={"token": TOKEN})
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text


def test_a_login_cookie_of_another_token_does_not_act(make_session: StorageFactory,
                                                      order: TriggerManager) -> None:
    other = client_for(make_session, "another-token-0123456789")
    log_in(other, "another-token-0123456789")
    client = client_for(make_session)
    client.cookies.set(LOGIN_COOKIE, other.cookies[LOGIN_COOKIE])
    response = post(client, "/session/replay", ACTIONS["/session/replay"])
    assert response.status_code == 401


def test_logging_out_forgets_the_cookie(client: TestClient, order: TriggerManager) -> None:
    log_in(client)
    page = client.get("/session?uid=order-17").text
    response = client.post("/logout", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert response.status_code == 303
    assert LOGIN_COOKIE not in client.cookies
    assert post(client, "/session/replay", ACTIONS["/session/replay"]).status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/x", "http://evil.example/", "\\\\evil",
                                    "/\\evil.example", "javascript:alert(1)"])
def test_after_login_only_a_local_page_is_opened(client: TestClient, target: str) -> None:
    page = client.get("/login")
    response = client.post("/login", data={"csrf": csrf_of(page.text), "token": TOKEN,
                                           "next": target}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/sessions"
    form = client.get("/login", params={"next": target}).text
    assert ('input', {'type': 'hidden', 'name': 'next', 'value': '/sessions'}) in tags(form)
