"""Storage benchmark: memory, SQLite, Redis and PostgreSQL side by side, in one run.

    python benchmarks/storage.py [--backends memory,sqlite,redis,postgresql] [--redis-url URL]
        [--postgres-url URL] [--quick]

Prints one table per measure:

(a) fire throughput when no task becomes ready (5-task configuration);
    for Redis, the median fire next to a bare ``PING`` from the same client,
    measured interleaved so both see the same network;
(b) per-fire time with 10 ... 10,000 existing instances of an ``andEvery`` task
    (a fire that readies nothing, and a fire that creates and runs one more);
(c) Redis round trips and commands per fire (a counting connection, and the
    server's INFO commandstats deltas, which other clients of a shared server inflate);
(d) 4 processes firing into one session and into 4 sessions: throughput and
    correctness counts;
(e) the memory backend's own targets (a fire that readies nothing, an inline
    cascade hop);
(f) Redis against the reference design that rewrote the whole session under a lock,
    both in PINGs of their own runs;
(g) a fan-in of 1,600 triggers: one session, one task ``after`` all of them, fired one by
    one in a seeded random order by this process (the one that configured the session);
    the mean fire of the first tenth (160 fires) against the last tenth (the 160 fires
    before the last one: the fire that readies the task and runs it is shown apart).

Ratios are what count on a shared, noisy machine: both sides of each are
measured in the same loop. Redis keys live under a unique prefix, deleted at
the end; SQLite files in a temporary directory; PostgreSQL tables in a schema of the run's
own, dropped at the end. PostgreSQL commits wait for the server's WAL flush (its durable
default): where fsync is slow, that is most of a PostgreSQL fire.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from redis.connection import Connection, ConnectionPool

from triggerhooks import (
    MemoryStorageBackend,
    PostgresStorageBackend,
    RedisStorageBackend,
    SqliteStorageBackend,
    StorageBackend,
    TriggerManager,
    trigger_task,
)
from triggerhooks.storages import MemoryStore, open_reference
from triggerhooks.task import TaskContext
from triggerhooks.testing import holding_runner

SIZES = (10, 100, 1_000, 10_000)
REFERENCE_PING = 150e-6
"""The reference design (the whole session rewritten under a Redis lock) was measured with
PING at 150 us: 0.8-1.0 ms per fire in a small session, 138 ms at 5,000 instances."""
REFERENCE_SMALL = 0.8e-3
REFERENCE_5000 = 138e-3
in_pings: dict[str, float] = {}
"""Redis fire times in PINGs of the same run, for the comparison with the reference design."""


@trigger_task(name="bench.noop")
def noop(context: TaskContext) -> dict[str, Any]:
    return {}


class CountingConnection(Connection):
    """One ``send_packed_command`` is one round trip (a pipeline sends once)."""

    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        super().send_packed_command(command, check_health)


# -- storages -------------------------------------------------------------------------------


class Backends:
    """Builds fresh sessions on each backend and removes them at the end."""

    def __init__(self, redis_url: str, postgres_url: str = "") -> None:
        self.redis_url = redis_url
        self.postgres_url = postgres_url
        self.prefix = f"thbench-{uuid.uuid4().hex[:8]}"
        self.tmp = tempfile.TemporaryDirectory(prefix="thbench-")
        self.sqlite_path = Path(self.tmp.name) / "bench.sqlite3"
        self.store = MemoryStore()
        self.pool = ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
        self.client = redis.Redis(connection_pool=self.pool)

    def make(self, backend: str, uid: str | None = None) -> StorageBackend:
        uid = uid or f"bench-{uuid.uuid4().hex[:10]}"
        if backend == "memory":
            return MemoryStorageBackend(uid, store=self.store)
        if backend == "sqlite":
            return SqliteStorageBackend(uid, self.sqlite_path)
        if backend == "postgresql":
            return PostgresStorageBackend(uid, self.postgres_url, schema=self.schema)
        return RedisStorageBackend(uid, client=self.client, prefix=self.prefix)

    @property
    def schema(self) -> str:
        return self.prefix.replace("-", "_")

    def close(self) -> None:
        if self.postgres_url:
            import psycopg

            with psycopg.connect(self.postgres_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        keys = list(self.client.scan_iter(match=f"{self.prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            self.client.delete(*keys[start:start + 500])
        self.pool.disconnect()
        self.tmp.cleanup()


def timed(fn: Callable[..., object], *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f}"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  " + "  ".join("-" * w for w in widths))
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


# -- (a) throughput when nothing becomes ready --------------------------------------------------

FIVE_TASKS = {f"t{i}": {"after": [f"a{i}", "never"], "run": "bench.noop"} for i in range(5)}


def bench_throughput(backends: Backends, names: list[str], fires: int) -> None:
    rows = []
    for backend in names:
        storage = backends.make(backend)
        manager = TriggerManager(storage)
        manager.update_configuration(FIVE_TASKS)
        for i in range(50):
            manager.fire(f"a{i % 5}", {"i": i})
        fire_times, ping_times, cold_times = [], [], []
        is_redis = isinstance(storage, RedisStorageBackend)
        start = time.perf_counter()
        for i in range(fires):
            fire_times.append(timed(manager.fire, f"a{i % 5}", {"i": i}))
        elapsed = time.perf_counter() - start
        row = [backend, us(statistics.median(fire_times)), f"{fires / elapsed:,.0f}",
               "", "", "", ""]
        if is_redis:  # warm, cold and PING interleaved, so all three see the same network
            assert isinstance(storage, RedisStorageBackend)
            cache = storage._session_cache()
            fire_times = []
            for i in range(fires):
                cache.reset()  # as the first fire of a trigger in a process: read, then commit
                cold_times.append(timed(manager.fire, f"a{i % 5}", {"i": i}))
                fire_times.append(timed(manager.fire, f"a{i % 5}", {"i": i}))
                ping_times.append(timed(backends.client.ping))
            ping = statistics.median(ping_times)
            warm = statistics.median(fire_times)
            cold = statistics.median(cold_times)
            in_pings.update(warm=warm / ping, cold=cold / ping)
            row[1] = us(warm)
            row[3:] = [us(ping), f"{warm / ping:.2f}x {verdict(warm <= 2.5 * ping)}",
                       us(cold), f"{cold / ping:.2f}x"]
        rows.append(row)
    table(f"(a) fire, no task becomes ready (5-task configuration, {fires} fires)",
          ["backend", "median us", "fires/s", "PING us", "fire/PING (<=2.5)",
           "cold-cache fire us", "cold/PING"], rows)


# -- (b) flat in session size -----------------------------------------------------------------------


def _grown_session(backends: Backends, backend: str, size: int) -> TriggerManager:
    """A session with ``size`` finished instances of an ``andEvery`` task."""
    manager = TriggerManager(backends.make(backend))
    manager.update_configuration({"pages": {
        "after": ["start"], "andEvery": "page", "unless": ["stop1", "stop2"],
        "run": "bench.noop"}})
    manager.fire("start")
    for number in range(size):
        manager.fire("page", {"n": number})
    return manager


def bench_flat(backends: Backends, names: list[str], samples: int) -> None:
    """One session per size, grown first; then the sizes are timed in turns, so that
    they all see the same machine and network (which drift from minute to minute)."""
    rows = []
    for backend in names:
        managers = {size: _grown_session(backends, backend, size) for size in SIZES}
        quiet: dict[int, list[float]] = {size: [] for size in SIZES}
        busy: dict[int, list[float]] = {size: [] for size in SIZES}
        pings: list[float] = []
        for turn in range(samples):
            if backend == "redis":
                pings.append(timed(backends.client.ping))
            for size, manager in managers.items():
                quiet[size].append(timed(manager.fire, "stop1"))
                if turn % 4 == 0:
                    busy[size].append(timed(manager.fire, "page", {"n": -1}))
        for size, manager in managers.items():
            assert len(manager.storage) == size + len(busy[size])
        for label, values in (("readies nothing", quiet), ("creates and runs one", busy)):
            medians = {size: statistics.median(times) for size, times in values.items()}
            ratio = medians[SIZES[-1]] / medians[SIZES[0]]
            rows.append([backend, label, *(us(medians[s]) for s in SIZES),
                         f"{ratio:.2f} {verdict(ratio <= 1.5)}"])
            if backend == "redis" and label == "readies nothing":
                in_pings["10k"] = medians[SIZES[-1]] / statistics.median(pings)
    table("(b) median fire (us) by existing instances of an andEvery task (sizes timed in turns)",
          ["backend", "fire", *(f"{s:,}" for s in SIZES), "10k/10 (<=1.5)"], rows)


# -- (c) Redis round trips and commands --------------------------------------------------------------


def _commandstats(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


@contextmanager
def counting(client: redis.Redis) -> Iterator[dict[str, int]]:
    found: dict[str, int] = {}
    sends, calls = CountingConnection.sends, _commandstats(client)
    try:
        yield found
    finally:
        found["round trips"] = CountingConnection.sends - sends - 1  # less the INFO below
        found["commands"] = _commandstats(client) - calls - 1  # less the first INFO


def bench_round_trips(backends: Backends, repeat: int) -> None:
    rows = []
    with holding_runner("bench.hold") as holding:  # keeps a fire apart from its hand-off
        def measure(label: str, setup: Callable[[], Callable[[], object]], target: str) -> None:
            totals = {"round trips": 0, "commands": 0}
            for _ in range(repeat):
                action = setup()
                with counting(backends.client) as found:
                    action()
                for key in totals:
                    totals[key] += found[key]
            rows.append([label, f"{totals['round trips'] / repeat:.2f}",
                         f"{totals['commands'] / repeat:.1f}", target])

        def session(cold: bool = False) -> TriggerManager:
            manager = TriggerManager(backends.make("redis"))
            manager.update_configuration({
                "t": {"after": ["a", "b"], "run": "bench.noop", "using": "bench.hold"},
                "u": {"after": ["c"], "run": "bench.noop"},
                "v": {"after": ["u"], "run": "bench.noop"}})
            manager.fire("a")
            if cold:
                manager.storage._session_cache().reset()  # type: ignore[attr-defined]
            return manager

        measure("fire, nothing ready (warm)", lambda: (m := session()) and (lambda: m.fire("a")),
                "<= 2")
        measure("fire, nothing ready (cold)",
                lambda: (m := session(cold=True)) and (lambda: m.fire("a")), "<= 2")
        measure("fire, one task ready (warm)", lambda: (m := session()) and (lambda: m.fire("b")),
                "<= 3")
        measure("fire, one task ready (cold)",
                lambda: (m := session(cold=True)) and (lambda: m.fire("b")), "<= 3")

        def handoff(cold: bool) -> Callable[[], object]:
            manager = session()
            holding.held.clear()
            manager.fire("b")
            if cold:
                manager.storage._session_cache().reset()  # type: ignore[attr-defined]
            owner, name, _ = holding.held.pop()
            return lambda: owner.execute(name)

        measure("hand-off: claim + run + complete (warm)", lambda: handoff(False), "(runner's)")
        measure("hand-off: claim + run + complete (cold)", lambda: handoff(True), "(runner's)")
        measure("fire + inline cascade u -> v, finalization",
                lambda: (m := session()) and (lambda: m.fire("c")), "")
    table(f"(c) Redis per call (mean of {repeat}; commands = INFO commandstats delta, "
          "calls inside scripts included)", ["what", "round trips", "commands", "target"], rows)


# -- (d) processes ----------------------------------------------------------------------------------

PER_PROCESS = 300
TICKS = 100


def _worker(number: int, barrier: Any, reference: dict[str, Any], times: Any) -> None:
    manager = TriggerManager(open_reference(reference))
    barrier.wait(timeout=60)
    start = time.perf_counter()
    for k in range(PER_PROCESS):
        manager.fire(f"x{number}_{k}", {"k": k})
        if k < TICKS:
            manager.fire("tick", {"p": number, "k": k})
    times.put(time.perf_counter() - start)


def bench_processes(backends: Backends, names: list[str]) -> None:
    rows = []
    ctx = multiprocessing.get_context("spawn")

    def configuration(processes: range) -> dict[str, Any]:
        """A fan-in over the first and last trigger of every process firing into the session."""
        return {"fan": {"after": [f"x{p}_{k}" for p in processes for k in (0, PER_PROCESS - 1)],
                        "run": "bench.noop"},
                "every": {"after": ["start"], "andEvery": "tick", "run": "bench.noop"}}

    for backend in names:
        if backend == "memory":
            rows.append([backend, "-", "n/a: one process's memory", "", "", ""])
            continue
        for layout in ("one session", "4 sessions"):
            shared = backends.make(backend)
            storages = [shared] * 4 if layout == "one session" else [
                backends.make(backend) for _ in range(4)]
            for number, storage in enumerate(dict.fromkeys(storages)):
                manager = TriggerManager(storage)
                manager.update_configuration(configuration(
                    range(4) if layout == "one session" else range(number, number + 1)))
                manager.fire("start")
            barrier, times = ctx.Barrier(4), ctx.Queue()
            processes = [ctx.Process(target=_worker, args=(n, barrier, s.reference(), times))
                         for n, s in enumerate(storages)]
            for process in processes:
                process.start()
            spent = [times.get(timeout=600) for _ in processes]
            for process in processes:
                process.join()
            fires = 4 * (PER_PROCESS + TICKS)
            recorded = sum(sum(1 for t in s.latest_kwargs if t.startswith("x"))
                           for s in set(storages))
            ticks = [i for s in set(storages) for i in s.instances_of_task("every")]
            fans = [i for s in set(storages) for i in s.instances_of_task("fan")]
            ok = (recorded == 4 * PER_PROCESS and len(ticks) == 4 * TICKS
                  and all(i.status == "finished" for i in ticks + fans)
                  and len(fans) == len(set(storages)))
            rows.append([backend, layout, f"{fires / max(spent):,.0f}",
                         f"{recorded}/{4 * PER_PROCESS}", f"{len(ticks)}/{4 * TICKS}",
                         f"{len(fans)} {verdict(ok)}"])
    table(f"(d) 4 processes, each {PER_PROCESS} distinct triggers + {TICKS} andEvery ticks "
          "(each tick runs a task inline)",
          ["backend", "sessions", "fires/s (all)", "kwargs kept", "tick instances (run once)",
           "fan-in runs, all correct"], rows)


# -- (e) memory -------------------------------------------------------------------------------------


def bench_memory(backends: Backends, fires: int) -> None:
    manager = TriggerManager(backends.make("memory"))
    manager.update_configuration(FIVE_TASKS)
    quiet = statistics.median(timed(manager.fire, "a1", {"x": 1}) for _ in range(fires))
    hops = 200
    chain = {f"c{i}": {"after": [f"c{i - 1}" if i else "go"], "run": "bench.noop"}
             for i in range(hops)}
    runs = []
    for _ in range(20):
        cascade = TriggerManager(backends.make("memory"))
        cascade.update_configuration(chain)
        runs.append(timed(cascade.fire, "go") / hops)
    hop = statistics.median(runs)
    table("(e) memory backend", ["what", "median us", "target"], [
        ["fire, nothing ready", us(quiet), f"<= 10 {verdict(quiet <= 10e-6)}"],
        [f"inline cascade hop ({hops}-task chain)", us(hop), f"<= 50 {verdict(hop <= 50e-6)}"],
    ])


def compare_reference() -> None:
    """Ours against the reference design, both in PINGs of their own runs."""
    small, large = REFERENCE_SMALL / REFERENCE_PING, REFERENCE_5000 / REFERENCE_PING
    rows = []
    for label, key, reference, target in (
            ("small session, warm", "warm", small, 3), ("small session, cold", "cold", small, 3),
            ("10,000 instances (reference: 5,000)", "10k", large, 50)):
        if key in in_pings:
            ours = in_pings[key]
            rows.append([label, f"{reference:.1f}", f"{ours:.2f}", f"{reference / ours:.1f}x",
                         f">= {target}x {verdict(reference / ours >= target)}"])
    table("(f) Redis fire against the reference design, in PINGs", [
        "session", "reference", "ours", "better by", "target"], rows)


# -- (g) a fan-in of 1,600 triggers ------------------------------------------------------------

FAN_IN = 1_600


def bench_fan_in(backends: Backends, names: list[str], repeats: int) -> None:
    """Does a fire slow down as more of a task's triggers have fired? ``repeats`` sessions
    per backend, each fired in an order of its own (seeded); tenths pooled over them."""
    tenth = FAN_IN // 10
    rows = []
    for backend in names:
        first: list[float] = []
        last: list[float] = []
        readying: list[float] = []
        for repeat in range(repeats):
            manager = TriggerManager(backends.make(backend))
            triggers = [f"t{i:04d}" for i in range(FAN_IN)]
            manager.update_configuration({"fanin": {"after": triggers, "run": "bench.noop"}})
            random.Random(repeat).shuffle(triggers)
            times = [timed(manager.fire, trigger, {"i": i}) for i, trigger in enumerate(triggers)]
            assert manager.storage["fanin#0"].status == "finished"
            first += times[:tenth]
            last += times[-tenth - 1:-1]
            readying.append(times[-1])
        ratio = statistics.fmean(last) / statistics.fmean(first)
        rows.append([backend, us(statistics.fmean(first)), us(statistics.fmean(last)),
                     f"{ratio:.2f}x {verdict(ratio <= 1.5)}", us(statistics.median(readying))])
    table(f"(g) fan-in: one task after {FAN_IN:,} triggers, fired in a random order "
          f"({repeats} session{'s' * (repeats != 1)} per backend)",
          ["backend", f"first {tenth} mean us", f"last {tenth} mean us (readying fire excluded)",
           "last/first (<=1.5)", "readying fire us (runs the task)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="memory,sqlite,redis")
    parser.add_argument("--redis-url", default=os.environ.get("TRIGGERHOOKS_REDIS_URL",
                                                              "redis://127.0.0.1:6379/0"))
    parser.add_argument("--postgres-url", default=os.environ.get(
        "TRIGGERHOOKS_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    options = parser.parse_args()
    names = [name.strip() for name in options.backends.split(",") if name.strip()]
    backends = Backends(options.redis_url,
                        options.postgres_url if "postgresql" in names else "")
    scale = 4 if options.quick else 1
    try:
        print(f"triggerhooks storage benchmark; redis-py {redis.__version__}, "
              f"hiredis {'yes' if _has_hiredis() else 'no'}, {os.cpu_count()} CPUs")
        bench_throughput(backends, names, 4000 // scale)
        bench_flat(backends, names, 400 // scale)
        if "redis" in names:
            bench_round_trips(backends, 20 // scale or 1)
        bench_processes(backends, names)
        if "memory" in names:
            bench_memory(backends, 20000 // scale)
        compare_reference()
        bench_fan_in(backends, names, 1 if options.quick else 3)
    finally:
        backends.close()


def _has_hiredis() -> bool:
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
