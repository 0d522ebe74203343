"""Contention benchmark: many writers firing into one session (or many sessions) at once.

    python benchmarks/contention.py [--backends memory,sqlite,redis,postgresql] [--redis-url URL]
        [--postgres-url URL] [--runs 10] [--processes 1,4,8,16] [--quick] [--deadline 300]

For every backend, writer count N and scenario, ``--runs`` runs; in each, N writers
(threads of this process for memory, whose sessions live in one process's memory;
``spawn`` processes for SQLite, Redis and PostgreSQL, which rebuild their storages with
``open_reference``) wait at a barrier and are released together. Sessions are
configured before the writers start: configuring is not measured.

(a) fan-in: one session, one task ``fanin`` whose ``after`` lists 1,600 triggers
    (``t0000`` ... ``t1599``); each is fired exactly once, split among the writers,
    in a random order that is the same in every run (which triggers have fired changes
    what a fire costs: firing them in order costs more, a cost of the order, not of
    contention, which would skew the comparison between writer counts).
    Expected: one instance ``fanin#0``, run once (inline runner, a no-op task), finished,
    and the kwargs of all 1,600 firings kept.
(b) andEvery: one session, ``{"every": {"after": ["tick"], "andEvery": "tick"}}``;
    ``tick`` is fired 1,600 times in all, each with kwargs ``{"writer": w, "n": i}``.
    Each firing creates one instance, so expected: 1,600 instances, each run once and
    finished, each (w, i) in exactly one instance's kwargs.
(c) many sessions: 1,000 sessions of one task after ``go``, split among the writers,
    each fired once. Expected: one finished instance per session.

``--quick`` (a smoke test) fires 400 / 400 / 200 instead and runs twice unless
``--runs`` says otherwise.

Per (scenario, N) the table gives: fires/s, all writers together (total fires / wall time
from the barrier's release to the last writer done; the median of the runs); p50 and p99
of the time around each ``manager.fire`` call, over all writers and runs; and, summed
over the runs:

- errors: any exception from ``fire``, by type;
- lost: expected firings or instances missing once all writers are done; "silent" are
  those whose ``fire`` returned without an error (a firing whose ``fire`` raised counts
  in both errors and lost);
- stuck: instances left in another status than ``finished``, by status;
- duplicated: instances beyond those expected, a firing present in two instances, a task
  run more often than there are instances;
- hung: writers that had not reported within ``--deadline`` seconds, or died; the run is
  dropped (not checked), and a fresh set of writer processes serves the next one.

Each run is checked by reading the storage after all writers are done.

Targets: all counts zero, in every scenario and at every N; and for many writers into one
session, (a) and (b): with 8 writers, fires/s at least that of 1 writer and p99 under 20 ms
(if 8 is not among ``--processes``, the largest N). The targets table shows (c) beside
them, unjudged, and the worst p99 of any N.

``benchmarks/ceilings.py`` measures the same shapes of work with no triggerhooks code (threads
doing pure-Python work; processes committing one SQLite transaction per fire): what this
machine allows many writers of an in-process store and of one SQLite file, to read the
memory and SQLite rows against.

The writer processes are started once per backend and N, and reused for every run;
runs alternate between the writer counts so that all see the same machine. On 2 cores
a default run (10 runs, N = 1, 4, 8, 16) took 5.5 minutes: memory half a minute, SQLite
2.7, Redis 2.3; ``--runs 3`` takes about a third of that.

Redis keys live under a unique prefix, deleted at the end; SQLite files in a temporary
directory; PostgreSQL tables in a schema of the run's own, dropped at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import redis

from triggerhooks import (
    MemoryStorageBackend,
    PostgresStorageBackend,
    RedisStorageBackend,
    SqliteStorageBackend,
    StorageBackend,
    TaskInstance,
    TriggerManager,
    trigger_task,
)
from triggerhooks.storages import MemoryStore, open_reference
from triggerhooks.task import TaskContext

NOOP = "bench.contention.noop"
SCENARIOS = ("fan-in", "andEvery", "sessions")
ONE_SESSION = ("fan-in", "andEvery")
"""The scenarios of many writers into one session, which the rate and p99 targets are for."""
FIRES = {"fan-in": 1_600, "andEvery": 1_600, "sessions": 1_000}
QUICK_FIRES = {"fan-in": 400, "andEvery": 400, "sessions": 200}
BARRIER_TIMEOUT = 120.0
"""Seconds a writer waits at the barrier for the others (a writer that never arrives breaks it)."""
P99_TARGET = 20e-3
SCALING_WRITERS = 8


class _Executions:
    """How many times the no-op task ran in this process (all threads)."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def add(self) -> None:
        with self.lock:
            self.count += 1


executions = _Executions()


@trigger_task(name=NOOP)
def noop(context: TaskContext) -> dict[str, Any]:
    executions.add()
    return {}


# -- writers ----------------------------------------------------------------------------------


class Job(TypedDict):
    """One writer's share of a run: the sessions it opens and its fires into them."""

    writer: int
    references: list[dict[str, Any]]
    fires: list[tuple[int, str, int]]
    """(index into ``references``, trigger, n): fired with kwargs ``{"writer": w, "n": n}``."""


class Report(TypedDict):
    """What a writer sends back (plain data: it crosses processes)."""

    writer: int
    start: float
    end: float
    latencies: list[float]
    errors: dict[str, int]
    failed: list[int]
    """The ``n`` of each fire that raised."""
    executions: int
    fatal: str | None
    """Set when the writer could not take part (opening its storages, the barrier)."""


Opener = Callable[[dict[str, Any]], StorageBackend]


def run_writer(job: Job, opener: Opener, wait: Callable[[], object]) -> Report:
    """Open the job's sessions, wait at the barrier, fire; times and errors of every fire."""
    report = Report(writer=job["writer"], start=0.0, end=0.0, latencies=[], errors={},
                    failed=[], executions=0, fatal=None)
    try:
        managers = [TriggerManager(opener(reference)) for reference in job["references"]]
    except Exception as error:  # still go to the barrier, so the others are not kept waiting
        report["fatal"] = f"opening the sessions: {error!r}"
        managers = []
    try:
        wait()
    except Exception as error:
        report["fatal"] = report["fatal"] or f"at the barrier: {error!r}"
    if report["fatal"]:
        return report
    errors: Counter[str] = Counter()
    latencies, failed = report["latencies"], report["failed"]
    writer, clock = job["writer"], time.perf_counter
    report["start"] = clock()
    for session, trigger, n in job["fires"]:
        before = clock()
        try:
            managers[session].fire(trigger, {"writer": writer, "n": n})
        except Exception as error:
            errors[type(error).__name__] += 1
            failed.append(n)
        latencies.append(clock() - before)
    report["end"] = clock()
    report["errors"] = dict(errors)
    return report


def _process_writer(jobs: Any, reports: Any, barrier: Any) -> None:
    """A writer process: one job per run until ``None``."""
    while (job := jobs.get()) is not None:
        before = executions.count
        report = run_writer(job, open_reference, lambda: barrier.wait(BARRIER_TIMEOUT))
        report["executions"] = executions.count - before
        reports.put(report)


@dataclass
class Outcome:
    """The writers' reports of one run, and how many never reported."""

    reports: list[Report]
    hung: int = 0
    executions: int = 0


class ProcessWriters:
    """N writer processes, started once and given one job each per run."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[Any] = []

    def start(self) -> None:
        ctx = self.context
        self.jobs, self.reports, self.barrier = ctx.Queue(), ctx.Queue(), ctx.Barrier(self.count)
        self.processes = [ctx.Process(target=_process_writer, daemon=True,
                                      args=(self.jobs, self.reports, self.barrier))
                          for _ in range(self.count)]
        for process in self.processes:
            process.start()

    def run(self, jobs: list[Job], opener: Opener, deadline: float) -> Outcome:
        """Hand out the jobs and collect the reports (the processes open with ``open_reference``)."""
        if not self.processes:
            self.start()
        for job in jobs:
            self.jobs.put(job)
        reports: list[Report] = []
        give_up = time.monotonic() + deadline
        while len(reports) < len(jobs) and time.monotonic() < give_up:
            try:
                reports.append(self.reports.get(timeout=1.0))
            except queue.Empty:
                if any(not process.is_alive() for process in self.processes):
                    break
        outcome = Outcome(reports, hung=len(jobs) - len(reports),
                          executions=sum(report["executions"] for report in reports))
        if outcome.hung or any(report["fatal"] for report in reports):
            self.stop(force=True)  # a fresh set of processes (and barrier) for the next run
        return outcome

    def stop(self, force: bool = False) -> None:
        for process in self.processes:
            if force:
                process.terminate()
            else:
                self.jobs.put(None)
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=10)
        self.processes = []


class ThreadWriters:
    """N writer threads of this process (memory sessions are one process's own)."""

    def __init__(self, count: int) -> None:
        self.count = count

    def run(self, jobs: list[Job], opener: Opener, deadline: float) -> Outcome:
        barrier = threading.Barrier(len(jobs))
        reports: list[Report] = []
        lock = threading.Lock()

        def write(job: Job) -> None:
            report = run_writer(job, opener, lambda: barrier.wait(BARRIER_TIMEOUT))
            with lock:
                reports.append(report)

        before = executions.count
        threads = [threading.Thread(target=write, args=(job,), daemon=True) for job in jobs]
        for thread in threads:
            thread.start()
        give_up = time.monotonic() + deadline
        for thread in threads:
            thread.join(timeout=max(0.0, give_up - time.monotonic()))
        with lock:  # a thread still alive cannot be stopped: it is counted hung and left
            done = list(reports)
        return Outcome(done, hung=len(jobs) - len(done), executions=executions.count - before)

    def stop(self, force: bool = False) -> None:
        return None


Writers = ProcessWriters | ThreadWriters


# -- sessions -----------------------------------------------------------------------------------


class Backend:
    """Makes fresh sessions on one backend, and removes them."""

    def __init__(self, name: str, redis_url: str, workdir: Path, prefix: str,
                 postgres_url: str = "") -> None:
        self.name = name
        self.redis_url = redis_url
        self.postgres_url = postgres_url
        self.schema = prefix.replace("-", "_")
        self.sqlite_path = workdir / f"{name}.sqlite3"
        self.prefix = prefix
        self.store = MemoryStore()

    def make(self, uid: str) -> StorageBackend:
        if self.name == "memory":
            return MemoryStorageBackend(uid, store=self.store)
        if self.name == "sqlite":
            return SqliteStorageBackend(uid, self.sqlite_path)
        if self.name == "postgresql":
            return PostgresStorageBackend(uid, self.postgres_url, schema=self.schema)
        return RedisStorageBackend(uid, self.redis_url, prefix=self.prefix)

    def opener(self) -> Opener:
        """How a writer opens a session from its reference."""
        if self.name == "memory":
            store = self.store
            return lambda reference: MemoryStorageBackend(reference["uid"], store=store)
        return open_reference

    def writers(self, count: int) -> Writers:
        return ThreadWriters(count) if self.name == "memory" else ProcessWriters(count)

    def forget(self, storages: list[StorageBackend]) -> None:
        for storage in storages:
            storage.clear()
        if self.name == "memory":
            self.store = MemoryStore()


@dataclass
class Check:
    """What the storage held after a run, against what was expected."""

    lost: int = 0
    silent: int = 0
    stuck: Counter[str] = field(default_factory=Counter)
    """Status -> instances left in it instead of ``finished``."""
    duplicated: int = 0


def _split(total: int, writers: int) -> list[list[int]]:
    """Each writer's fires (their ``n``): ``0 .. total - 1`` in a random order, the same
    in every run, dealt out in turn."""
    order = list(range(total))
    random.Random(total).shuffle(order)
    return [order[w::writers] for w in range(writers)]


def _setup(backend: Backend, scenario: str, fires: int, writers: int,
           ) -> tuple[list[StorageBackend], list[Job]]:
    """Configure the run's session(s); the writers' jobs."""
    run_id = uuid.uuid4().hex[:10]
    shares = _split(fires, writers)
    if scenario == "sessions":
        storages = [backend.make(f"many-{run_id}-{k}") for k in range(fires)]
        for storage in storages:
            TriggerManager(storage).update_configuration({"one": {"after": ["go"], "run": NOOP}})
        return storages, [Job(writer=w, references=[storages[k].reference() for k in share],
                              fires=[(j, "go", k) for j, k in enumerate(share)])
                          for w, share in enumerate(shares)]
    storage = backend.make(f"{scenario}-{run_id}")
    if scenario == "fan-in":
        configuration: dict[str, Any] = {"fanin": {"after": [_trigger(i) for i in range(fires)],
                                                   "run": NOOP}}
    else:
        configuration = {"every": {"after": ["tick"], "andEvery": "tick", "run": NOOP}}
    TriggerManager(storage).update_configuration(configuration)
    trigger = _trigger if scenario == "fan-in" else (lambda i: "tick")
    return [storage], [Job(writer=w, references=[storage.reference()],
                           fires=[(0, trigger(i), i) for i in share])
                       for w, share in enumerate(shares)]


def _trigger(i: int) -> str:
    return f"t{i:04d}"


def _writer_of(fires: int, writers: int) -> dict[int, int]:
    """n -> the writer that fired it."""
    return {n: w for w, share in enumerate(_split(fires, writers)) for n in share}


def _unfinished(instances: list[TaskInstance]) -> Counter[str]:
    return Counter(instance.status.value for instance in instances
                   if instance.status != "finished")


def check_fan_in(storages: list[StorageBackend], fires: int, writers: int,
                 failed: set[int], ran: int) -> Check:
    storage, owner = storages[0], _writer_of(fires, writers)
    kept = storage.latest_kwargs
    missing = [n for n in range(fires) if kept.get(_trigger(n)) != {"writer": owner[n], "n": n}]
    instances = storage.instances_of_task("fanin")
    check = Check(lost=len(missing) + (not instances),
                  silent=len(set(missing) - failed) + (not instances and not failed),
                  stuck=_unfinished(instances), duplicated=max(0, len(instances) - 1))
    check.duplicated += max(0, ran - len(instances))
    return check


def check_every(storages: list[StorageBackend], fires: int, writers: int,
                failed: set[int], ran: int) -> Check:
    owner = _writer_of(fires, writers)
    instances = storages[0].instances_of_task("every")
    seen: Counter[tuple[int, int]] = Counter()
    for instance in instances:
        kwargs = instance.kwargs.get("tick", {})
        seen[(kwargs.get("writer", -1), kwargs.get("n", -1))] += 1
    expected = {(owner[n], n) for n in range(fires)}
    missing = [n for n in range(fires) if (owner[n], n) not in seen]
    duplicated = sum(count - 1 for count in seen.values())
    duplicated += sum(count for key, count in seen.items() if key not in expected)
    return Check(lost=len(missing), silent=len(set(missing) - failed),
                 stuck=_unfinished(instances),
                 duplicated=duplicated + max(0, ran - len(instances)))


def check_sessions(storages: list[StorageBackend], fires: int, writers: int,
                   failed: set[int], ran: int) -> Check:
    check = Check()
    total = 0
    for n, storage in enumerate(storages):
        instances = storage.instances_of_task("one")
        total += len(instances)
        check.lost += not instances
        check.silent += not instances and n not in failed
        check.stuck += _unfinished(instances)
        check.duplicated += max(0, len(instances) - 1)
    check.duplicated += max(0, ran - total)
    return check


CHECKS = {"fan-in": check_fan_in, "andEvery": check_every, "sessions": check_sessions}


# -- runs and tables --------------------------------------------------------------------------------


@dataclass
class Row:
    """All runs of one (scenario, N)."""

    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    check: Check = field(default_factory=Check)
    hung: int = 0
    dropped: int = 0

    @property
    def counts(self) -> int:
        c = self.check
        return (sum(self.errors.values()) + c.lost + c.stuck.total() + c.duplicated + self.hung
                + self.dropped)

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")


def run_once(backend: Backend, writers: Writers, scenario: str, fires: int,
             deadline: float, row: Row) -> None:
    """One run: configure, release the writers, check the storage, clean up."""
    storages, jobs = _setup(backend, scenario, fires, writers.count)
    outcome = writers.run(jobs, backend.opener(), deadline)
    fatal = [report["fatal"] for report in outcome.reports if report["fatal"]]
    row.hung += outcome.hung
    if outcome.hung or fatal:
        row.dropped += 1
        for reason in sorted(set(fatal)):
            print(f"  [{backend.name} {scenario} N={writers.count}] run dropped: {reason}")
        if outcome.hung:
            print(f"  [{backend.name} {scenario} N={writers.count}] run dropped: "
                  f"{outcome.hung} writer(s) did not report within {deadline:g} s (hung or died)")
    else:
        start = min(report["start"] for report in outcome.reports)
        end = max(report["end"] for report in outcome.reports)
        row.rates.append(fires / (end - start))
        failed = {n for report in outcome.reports for n in report["failed"]}
        for report in outcome.reports:
            row.latencies.extend(report["latencies"])
            row.errors.update(report["errors"])
        found = CHECKS[scenario](storages, fires, writers.count, failed, outcome.executions)
        for name in ("lost", "silent", "duplicated"):
            setattr(row.check, name, getattr(row.check, name) + getattr(found, name))
        row.check.stuck.update(found.stuck)
    backend.forget(storages)


def bench_backend(backend: Backend, counts: list[int], runs: int, fires: dict[str, int],
                  deadline: float) -> dict[tuple[str, int], Row]:
    rows = {(scenario, n): Row() for scenario in SCENARIOS for n in counts}
    pools = {n: backend.writers(n) for n in counts}
    try:
        for scenario in SCENARIOS:
            for _ in range(runs):
                for n in counts:  # in turns, so that every N sees the same machine
                    run_once(backend, pools[n], scenario, fires[scenario], deadline,
                             rows[scenario, n])
    finally:
        for pool in pools.values():
            pool.stop()
    return rows


def ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1e3:,.2f}"  # NaN: no run checked


def rate(value: float) -> str:
    return "-" if value != value else f"{value:,.0f}"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  " + "  ".join("-" * w for w in widths))
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def _by_kind(counts: Counter[str]) -> str:
    """``3 (ConflictError 2, StorageUnavailableError 1)``, or ``0``."""
    if not counts:
        return "0"
    kinds = ", ".join(f"{name} {count}" for name, count in counts.most_common())
    return f"{counts.total()} ({kinds})"


def print_backend(name: str, rows: dict[tuple[str, int], Row], counts: list[int],
                  runs: int, fires: dict[str, int]) -> None:
    unit = "threads" if name == "memory" else "processes"
    body = []
    for (scenario, n), row in rows.items():
        c = row.check
        body.append([scenario, str(n), rate(row.rate), ms(row.quantile(0.5)),
                     ms(row.quantile(0.99)), _by_kind(row.errors), f"{c.lost} ({c.silent})",
                     _by_kind(c.stuck), str(c.duplicated), str(row.hung), f"{len(row.rates)}/{runs}"])
    table(f"{name}: writers ({unit}) released together by a barrier; fan-in "
          f"{fires['fan-in']:,} triggers, andEvery {fires['andEvery']:,} ticks, "
          f"{fires['sessions']:,} sessions; counts summed over the runs",
          ["scenario", "N", "fires/s (median run)", "p50 ms", "p99 ms", "errors",
           "lost (silent)", "stuck", "duplicated", "hung", "runs checked"], body)
    scaled = SCALING_WRITERS if SCALING_WRITERS in counts else max(counts)
    targets = []
    for scenario in SCENARIOS:
        mine = [rows[scenario, n] for n in counts]
        zero = sum(row.counts for row in mine)
        # The rate and latency targets are for many writers into one session; the many
        # sessions of (c) are shown beside them, unjudged.
        judged = scenario in ONE_SESSION

        def judge(ok: bool, judged: bool = judged) -> str:
            return verdict(ok) if judged else "(no target)"

        if 1 in counts and scaled != 1:
            one, many = rows[scenario, 1].rate, rows[scenario, scaled].rate
            scaling = f"{rate(many)} vs {rate(one)} {judge(many >= one)}"
        else:
            scaling = "n/a (needs 1 and more writers)"
        p99 = rows[scenario, scaled].quantile(0.99)
        worst = max((rows[scenario, n].quantile(0.99), n) for n in counts)
        targets.append([scenario, f"{zero} {verdict(zero == 0)}", scaling,
                        f"{ms(p99)} {judge(p99 < P99_TARGET)}", f"{ms(worst[0])} at N={worst[1]}"])
    table(f"{name}: targets", ["scenario", "all counts zero",
                               f"fires/s: {scaled} writers >= 1 writer",
                               f"p99 < 20 ms at N={scaled}", "worst p99"], targets)
    if name == "memory":
        print("  (memory: the writers are threads of one process, taking turns on its one "
              "interpreter lock)")


@contextmanager
def backends_for(names: list[str], redis_url: str,
                 postgres_url: str = "") -> Iterator[list[Backend]]:
    prefix = f"thbench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="thbench-") as workdir:
        try:
            yield [Backend(name, redis_url, Path(workdir), prefix, postgres_url)
                   for name in names]
        finally:
            if "postgresql" in names:
                drop_schema(postgres_url, prefix.replace("-", "_"))
            if "redis" in names:
                client = redis.Redis.from_url(redis_url)
                keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
                for start in range(0, len(keys), 500):
                    client.delete(*keys[start:start + 500])
                client.close()


def drop_schema(url: str, schema: str) -> None:
    """Drop the benchmark's PostgreSQL schema, with its tables."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backends", default="memory,sqlite,redis")
    parser.add_argument("--redis-url", default=os.environ.get("TRIGGERHOOKS_REDIS_URL",
                                                              "redis://127.0.0.1:6379/0"))
    parser.add_argument("--postgres-url", default=os.environ.get(
        "TRIGGERHOOKS_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--runs", type=int, default=None, help="runs per (scenario, N); 10")
    parser.add_argument("--processes", default="1,4,8,16", help="writer counts N")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: fewer fires, 2 runs unless --runs")
    parser.add_argument("--deadline", type=float, default=300.0,
                        help="seconds a run may take before its writers count as hung")
    options = parser.parse_args()
    names = [name.strip() for name in options.backends.split(",") if name.strip()]
    counts = [int(n) for n in options.processes.split(",") if n.strip()]
    runs = options.runs or (2 if options.quick else 10)
    fires = QUICK_FIRES if options.quick else FIRES
    print(f"triggerhooks contention benchmark; {os.cpu_count()} CPUs, {runs} runs per row, "
          f"writers N = {', '.join(map(str, counts))}, inline runner, a no-op task", flush=True)
    started = time.monotonic()
    with backends_for(names, options.redis_url, options.postgres_url) as backends:
        for backend in backends:
            rows = bench_backend(backend, counts, runs, fires, options.deadline)
            print_backend(backend.name, rows, counts, runs, fires)
            print(f"  ({backend.name}: {time.monotonic() - started:,.0f} s since the start)",
                  flush=True)


if __name__ == "__main__":
    main()
