"""Listing sessions: the first page among 10 sessions against among 10,000.

    python benchmarks/sessions.py [--backends memory,sqlite,redis,postgresql]
                                  [--sizes 10,100,1000,10000] [--redis-url URL]
                                  [--postgres-url URL] [--repeat 30] [--quick]

For each backend and number of sessions, it creates the sessions (a one-task workflow and
one fire each, as an application's first event does), then times, as the median of ``--repeat`` runs:

- ``page``: ``storage.page_sessions(limit=50)``, the first page of uids;
- ``page + summaries``: that page and the summary of each of its sessions, which is
  what the web inspector's sessions list reads.

and prints the page against the smallest number of sessions (``x``) and against the first
number that fills a page (``x full``: the same 50 uids to find), and the summaries per
session shown (a page of 10 sessions shows 10, one of 10,000 shows 50): a listing that
does not grow with the store stays near 1.

Redis runs on a server of its own (``redis-server`` on a free port, nothing saved), so
that other keys of a shared server do not count: SCAN walks the whole key space, and
the last page among few sessions ends only once it has. ``--redis-url`` uses another
server instead, under a unique key prefix deleted at the end. SQLite files live in a
temporary directory, PostgreSQL tables in a schema of their own, dropped at the end.
``--quick`` (10, 100 and 1,000 sessions, 5 runs) is what the test suite runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import redis

from triggerhooks import (
    MemoryStorageBackend,
    PostgresStorageBackend,
    RedisStorageBackend,
    SqliteStorageBackend,
    StorageBackend,
    TriggerManager,
    trigger_task,
)
from triggerhooks.storages import MemoryStore
from triggerhooks.task import TaskContext
from triggerhooks.web.inspect import summarize

PAGE = 50
WORKFLOW = {"t_later": {"after": ["created", "paid"], "run": "benchmarks.sessions.noop"}}


@trigger_task(name="benchmarks.sessions.noop")
def noop(context: TaskContext) -> dict[str, Any]:
    return {}

Opener = Callable[[str], StorageBackend]


@contextmanager
def private_redis() -> Iterator[str]:
    """A Redis server of this run's own, on a free port, saving nothing; stopped at the end."""
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed: pass --redis-url or leave out redis")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        server.terminate()
        server.wait(10)


@contextmanager
def opener(backend: str, stack: ExitStack, redis_url: str | None,
           postgres_url: str = "") -> Iterator[Opener]:
    """Opens sessions in a fresh store of ``backend``; the store is removed afterwards."""
    if backend == "memory":
        store = MemoryStore()
        yield lambda uid: MemoryStorageBackend(uid, store=store)
    elif backend == "sqlite":
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        path = folder / f"sessions-{uuid.uuid4().hex[:8]}.sqlite3"
        yield lambda uid: SqliteStorageBackend(uid, path)
    elif backend == "redis":
        url = redis_url or stack.enter_context(private_redis())  # one server per store
        prefix = f"thbench-{uuid.uuid4().hex[:10]}"
        try:
            yield lambda uid: RedisStorageBackend(uid, url, prefix=prefix)
        finally:
            client = redis.Redis.from_url(url)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start:start + 1000])
            client.close()
    elif backend == "postgresql":
        import psycopg

        schema = f"thbench_{uuid.uuid4().hex[:10]}"
        try:
            yield lambda uid: PostgresStorageBackend(uid, postgres_url, schema=schema)
        finally:
            with psycopg.connect(postgres_url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    else:
        raise SystemExit(f"unknown backend {backend!r}; known: memory, sqlite, redis, postgresql")


def median_ms(run: Callable[[], object], repeat: int) -> float:
    """The median time of ``run`` in ms, after one run that warms caches and connections."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(open_session: Opener, sessions: int, repeat: int) -> tuple[float, float]:
    """Create ``sessions`` sessions; the median ms of the first page, and of the first page
    with the summary of each of its sessions."""
    for index in range(sessions):
        manager = TriggerManager(open_session(f"session-{index:06}"))
        manager.update_configuration(WORKFLOW)
        manager.fire("created", {"n": index})
    lister = open_session("-")
    page, _ = lister.page_sessions(limit=PAGE)
    assert len(page) == min(PAGE, sessions), (len(page), sessions)

    def with_summaries() -> None:
        uids, _ = lister.page_sessions(limit=PAGE)
        for uid in uids:
            summarize(uid, open_session(uid))

    return (median_ms(lambda: lister.page_sessions(limit=PAGE), repeat),
            median_ms(with_summaries, repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backends", default="memory,sqlite,redis")
    parser.add_argument("--sizes", default="10,100,1000,10000", help="numbers of sessions")
    parser.add_argument("--redis-url", default=None,
                        help="a Redis server to use (default: a private one, started here)")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "TRIGGERHOOKS_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="the PostgreSQL database of the postgresql backend (a schema of its own, dropped)")
    parser.add_argument("--repeat", type=int, default=30, help="runs per measure (median)")
    parser.add_argument("--quick", action="store_true", help="10, 100 and 1,000 sessions, 5 runs")
    args = parser.parse_args()
    sizes = [10, 100, 1000] if args.quick else [int(size) for size in args.sizes.split(",")]
    repeat = 5 if args.quick else args.repeat
    print(f"first page of at most {PAGE} sessions, median of {repeat} runs (ms); x: against "
          f"{sizes[0]:,} sessions, and the first size that fills a page")
    print(f"{'backend':<10} {'sessions':>9} {'shown':>6} {'page':>8} {'x':>6} {'x full':>7} "
          f"{'page + summaries':>17} {'per session shown':>18} {'x':>6}")
    with ExitStack() as stack:
        redis_url = args.redis_url
        if "redis" in args.backends.split(",") and redis_url is None:
            redis_url = stack.enter_context(private_redis())
        for backend in args.backends.split(","):
            first: tuple[float, float] | None = None
            full: float | None = None
            for size in sizes:
                with ExitStack() as own, \
                        opener(backend, own, redis_url, args.postgres_url) as open_session:
                    page, summaries = measure(open_session, size, repeat)
                shown = min(size, PAGE)
                each = summaries / shown
                first = first or (page, each)
                if full is None and shown == PAGE:
                    full = page
                against_full = f"{page / full:.1f}" if full else "-"
                print(f"{backend:<10} {size:>9,} {shown:>6} {page:>8.3f} {page / first[0]:>6.1f} "
                      f"{against_full:>7} {summaries:>17.3f} {each:>18.3f} "
                      f"{each / first[1]:>6.1f}", flush=True)

if __name__ == "__main__":
    main()
