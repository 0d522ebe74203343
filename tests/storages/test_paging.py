"""``page_sessions``: every backend walks the sessions of a prefix once, page by page, and
the default (built on ``session_uids``) agrees with each backend's own."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from tests.backends import REDIS_URL
from triggerhooks import TriggerManager
from triggerhooks.storages import RedisStorageBackend, SqliteStorageBackend, StorageBackend
from triggerhooks.storages.base import MAX_PAGE
from triggerhooks.storages.redis import backend as redis_backend
from triggerhooks.testing.contract import StorageFactory


def walk(storage: StorageBackend, prefix: str, limit: int) -> list[str]:
    """Every uid the pages of ``prefix`` list, in page order."""
    walked: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = storage.page_sessions(prefix, cursor, limit)
        assert len(page) <= limit
        walked += page
        if cursor is None:
            return walked


@pytest.fixture
def many(make_storage: StorageFactory) -> tuple[StorageBackend, str, list[str]]:
    """120 sessions under a prefix of their own, and one just outside it."""
    prefix = f"many-{uuid.uuid4().hex[:8]}-"
    uids = [f"{prefix}{index:03}" for index in range(120)]
    for uid in uids:
        TriggerManager(make_storage(uid)).fire("a")
    TriggerManager(make_storage(prefix[:-1] + "+")).fire("a")  # sorts right after the prefix
    return make_storage(), prefix, uids


def test_pages_walk_every_session_once_in_order(
        many: tuple[StorageBackend, str, list[str]], backend: str) -> None:
    storage, prefix, uids = many
    walked = walk(storage, prefix, 50)
    assert sorted(walked) == uids and len(walked) == len(uids)
    if backend != "redis":  # Redis pages come in the server's order
        assert walked == uids
        page, cursor = storage.page_sessions(prefix, limit=50)
        assert (page, cursor) == (uids[:50], uids[49])
        assert storage.page_sessions(prefix, uids[-2], 50) == ([uids[-1]], None)
    assert walk(storage, prefix, MAX_PAGE) == sorted(walked) or backend == "redis"


def test_the_default_agrees_with_each_backend(
        many: tuple[StorageBackend, str, list[str]]) -> None:
    storage, prefix, uids = many
    assert StorageBackend.page_sessions(storage, prefix, None, 50) == (uids[:50], uids[49])
    assert sorted(walk(storage, prefix, 7)) == uids
    # a cursor before the prefix starts at the prefix; one after it ends the walk
    assert StorageBackend.page_sessions(storage, prefix, "a", 3) == (uids[:3], uids[2])


def test_a_cursor_before_or_after_the_prefix(many: tuple[StorageBackend, str, list[str]],
                                             backend: str) -> None:
    if backend == "redis":
        pytest.skip("a Redis cursor is SCAN's, not a uid")
    storage, prefix, uids = many
    assert storage.page_sessions(prefix, "a", 3) == (uids[:3], uids[2])
    assert storage.page_sessions(prefix, prefix + "~", 3) == ([], None)


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1, 2.5, True])
def test_a_page_size_out_of_range_is_refused(storage: StorageBackend, limit: object) -> None:
    with pytest.raises(ValueError, match="a page holds 1 to"):
        storage.page_sessions("", None, limit)  # type: ignore[arg-type]


def test_a_session_in_only_some_tables_is_listed_once(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    TriggerManager(SqliteStorageBackend("b", path)).fire("a")
    storage = SqliteStorageBackend("any", path)
    storage.session_uids()  # creates the tables
    with sqlite3.connect(path) as conn:  # rows a session leaves in one table only
        conn.execute("INSERT INTO th_keys (uid, key, record) VALUES ('a', 'k', x'00')")
        conn.execute("INSERT INTO th_active (uid, work) VALUES ('c', 1)")
    assert storage.page_sessions() == (["a", "b", "c"], None)
    assert storage.page_sessions(limit=2) == (["a", "b"], "b")
    assert storage.page_sessions("", "b", 2) == (["c"], None)


def test_redis_lists_a_session_once_across_scan_batches(
        redis_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_backend, "_SCAN_COUNT", 3)  # many small batches
    prefix = f"{redis_prefix}-paging-{uuid.uuid4().hex[:6]}"
    open_session = lambda uid: RedisStorageBackend(uid, REDIS_URL, prefix=prefix)  # noqa: E731
    uids = [f"s{index:02}" for index in range(40)]
    try:
        for uid in uids[:20]:  # configured and fired: both keys are met
            manager = TriggerManager(open_session(uid))
            manager.update_configuration({"t": {"after": ["x"], "run": "tests.echo"}})
            manager.fire("a")
        for uid in uids[20:]:  # fired only: no cfg key
            TriggerManager(open_session(uid)).fire("a")
        storage = open_session("any")
        for limit in (1, 7, 50):
            walked = walk(storage, "", limit)
            assert sorted(walked) == uids and len(walked) == len(uids), limit
        assert sorted(walk(storage, "s1", 4)) == uids[10:20]
        with pytest.raises(ValueError, match="not a page cursor"):
            storage.page_sessions("", "s00", 5)
    finally:
        for uid in uids:
            open_session(uid).clear()


def test_uids_with_nul_and_control_characters_are_paged_in_order(
        make_storage: StorageFactory, backend: str) -> None:
    """PostgreSQL stores a uid holding a NUL (or starting with \\x01) escaped: such uids
    still come in their place, and a cursor that holds a NUL still works."""
    prefix = f"ctl-{uuid.uuid4().hex[:6]}-"
    names = ["a", "a\x00", "a\x00b", "a\x01", "\x01x", "b\x00\x00", "b", "\U0010ffff", "\ud7ff"]
    uids = sorted(prefix + name for name in names)
    for uid in uids:
        TriggerManager(make_storage(uid)).fire("x")
    storage = make_storage()
    walked = walk(storage, prefix, 2)
    assert sorted(walked) == uids and len(walked) == len(uids)
    if backend != "redis":
        assert walked == uids
        assert storage.page_sessions(prefix + "a\x00", limit=5)[0] == [prefix + "a\x00",
                                                                        prefix + "a\x00b"]
        assert storage.page_sessions(prefix, prefix + "a\x00", 2) == (
            [prefix + "a\x00b", prefix + "a\x01"], prefix + "a\x01")
        assert storage.page_sessions(prefix + "\U0010ffff")[0] == [prefix + "\U0010ffff"]
    assert [storage.page_sessions(prefix + name, limit=1)[0][0] for name in ("\x01", "b\x00")
            ] == [prefix + "\x01x", prefix + "b\x00\x00"]
