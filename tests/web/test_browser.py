"""The inspector in a real browser: Debian's headless Chromium, driven by Playwright, against
a uvicorn server on a free port. It lists the sessions, opens one with a failed instance,
logs in with the token, replays the instance with edited kwargs and sees it finished; then
the session changes elsewhere and the page follows without reloading. It saves the
screenshots the docs show (``docs/images/``) when ``TRIGGERHOOKS_SCREENSHOTS`` names a
folder (``docs/images``), else in the test's temporary folder.

Playwright is pointed at ``/usr/bin/chromium`` (never ``playwright install``: no browser is
downloaded). In CI (``$CI`` set) a missing Chromium fails the test; elsewhere it skips.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import expect, sync_playwright

from tests.web.helpers import SHOP, TOKEN
from triggerhooks import TriggerManager
from triggerhooks.storages import SqliteStorageBackend
from triggerhooks.testing.waiting import wait_for
from triggerhooks.web import WebSettings, create_app

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS_ENV = "TRIGGERHOOKS_SCREENSHOTS"
TIMEOUT_MS = 15_000


def _chromium() -> str:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); CI runs this test")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            launched.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The inspector of a SQLite file, with the token, served by uvicorn in a thread."""
    path = tmp_path / "shop.sqlite3"
    settings = WebSettings(lambda uid: SqliteStorageBackend(uid, path), f"sqlite:///{path}",
                           TOKEN, poll_seconds=0.3)
    port = _free_port()
    instance = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                             log_level="warning"))
    thread = threading.Thread(target=instance.run, name="inspector", daemon=True)
    thread.start()
    try:
        wait_for(lambda: instance.started, 30, "the inspector to start")
        yield f"http://127.0.0.1:{port}", path
    finally:
        instance.should_exit = True
        thread.join(30)


def _shots(tmp_path: Path) -> Path:
    folder = os.environ.get(SCREENSHOTS_ENV)
    return Path(folder) if folder else tmp_path


def test_a_failed_instance_is_replayed_in_the_browser_and_the_page_follows(
        browser: Any, server: tuple[str, Path], tmp_path: Path) -> None:
    base, path = server
    for uid, card in (("order-16", "4242"), ("order-17", "1111"), ("order-18", "4242")):
        manager = TriggerManager(SqliteStorageBackend(uid, path))
        manager.update_configuration(SHOP)
        manager.fire("orderPlaced", {"card": card, "note": "<script>alert(1)</script>"})
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: problems.append(f"a dialog opened: {dialog.message}"))
    page.set_default_timeout(TIMEOUT_MS)

    # The sessions list: the failed one stands out.
    page.goto(f"{base}/sessions")
    row = page.locator("table.sessions tr", has_text="order-17")
    expect(row.locator("td.failed")).to_have_text("1")
    expect(page.locator("table.sessions tbody tr")).to_have_count(3)
    page.screenshot(path=str(_shots(tmp_path) / "web-sessions.png"))

    # The session: its failed instance, and a way to log in.
    row.get_by_role("link", name="order-17").click()
    expect(page.locator("h1")).to_have_text("Session order-17")
    failed = page.locator("tr.instance", has_text="t_charge#0")
    expect(failed).to_contain_text("failed")
    expect(failed).to_contain_text("ValueError: card 1111 declined")
    page.get_by_role("link", name="log in to act").first.click()
    page.get_by_label("token").fill(TOKEN)
    page.get_by_role("button", name="log in").click()
    expect(page.locator("h1")).to_have_text("Session order-17")

    # Replay with edited kwargs.
    details = page.locator("details[data-name='t_charge#0']")
    details.locator("summary").first.click()
    details.locator("textarea[name=kwargs]").fill('{"orderPlaced": {"card": "4242"}}')
    page.screenshot(path=str(_shots(tmp_path) / "web-session.png"), full_page=True)
    details.get_by_role("button", name="replay t_charge#0").click()
    expect(page.locator(".notice")).to_have_text(
        "Replayed t_charge#0: its copy t_charge#1 is finished.")
    expect(page.locator("tr.instance", has_text="t_charge#0")).to_contain_text("replayed")
    expect(page.locator("tr.instance", has_text="t_charge#1")).to_contain_text("finished")

    # The session changes elsewhere: the page follows, without reloading.
    page.evaluate("window.sameDocument = true")
    TriggerManager(SqliteStorageBackend("order-17", path)).fire("addressConfirmed")
    expect(page.locator("tr.instance", has_text="t_ship#0")).to_contain_text("finished")
    expect(page.locator("#live")).to_contain_text("finalized")
    assert page.evaluate("window.sameDocument === true && window.triggerhooksUpdates >= 1")
    page.screenshot(path=str(_shots(tmp_path) / "web-session-finished.png"), full_page=True)

    assert problems == []  # no script error, no blocked asset, no alert()
    for name in ("web-sessions.png", "web-session.png", "web-session-finished.png"):
        assert (_shots(tmp_path) / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.close()
