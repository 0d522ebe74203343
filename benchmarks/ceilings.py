"""What this machine lets many writers of one store reach, with no triggerhooks code at all.

    python benchmarks/ceilings.py [--runs 5] [--writers 1,8] [--quick]

The contention benchmark (``contention.py``) asks, for many writers firing into one
session, that 8 writers fire at least as fast as 1 and that p99 stay under 20 ms. This
script measures the same shape of work stripped of everything but what the store
imposes, so that the targets can be read against what is possible here:

- ``threads``: N threads of one process, each doing pure-Python work of about one
  memory fire (``--fan-in-us``, ``--every-us``), sharing nothing. CPython runs one
  thread's bytecode at a time (the interpreter lock), so this is the most that writers
  of an in-process store can reach, whatever the store does.
- ``sqlite``: N processes, each committing a one-row ``BEGIN IMMEDIATE`` transaction per
  operation into one SQLite file (WAL, ``synchronous=NORMAL``), taking turns on a
  ``flock`` as the SQLite storage does, with Python work inside the turn and outside it
  shaped like one fire (a fan-in fire: one turn; an andEvery fire with the inline runner:
  three turns, for the firing, the claim and the completion). SQLite lets one writer in
  at a time, so this is the most that any design committing one transaction per fire
  can reach.

Per row: operations/s of all writers together (the median run), that rate against the
one of 1 writer, and p50/p99 of one operation. Work is sized by calibration at the
start (pure-Python loop iterations per microsecond, in one thread), so rows compare on
one machine and one run; the defaults are the single-writer costs measured with
``contention.py`` and ``benchmarks/storage.py``.
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import multiprocessing
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

OPERATIONS = 1_600
QUICK_OPERATIONS = 400
_files = itertools.count()
"""Numbers the SQLite files of the runs: each run writes into a fresh one."""


def work(iterations: int) -> int:
    """Pure-Python work: dictionary updates, as the engine's are mostly."""
    seen: dict[int, int] = {}
    for i in range(iterations):
        seen[i & 63] = seen.get(i & 63, 0) + i
    return len(seen)


def calibrate() -> float:
    """Iterations of :func:`work` per microsecond, in this thread (the best of 5)."""
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        work(20_000)
        best = max(best, 20_000 / ((time.perf_counter() - start) * 1e6))
    return best


@dataclass
class Row:
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Report = tuple[float, float, list[float]]
"""A writer's start, end and the duration of each of its operations."""


# -- threads: an in-process store ---------------------------------------------------------------


def thread_run(writers: int, *, operations: int, iterations: int) -> list[Report]:
    barrier = threading.Barrier(writers)
    reports: list[Report] = []
    lock = threading.Lock()

    def writer() -> None:
        barrier.wait()
        clock, mine = time.perf_counter, []
        start = clock()
        for _ in range(operations // writers):
            before = clock()
            work(iterations)
            mine.append(clock() - before)
        report = (start, clock(), mine)
        with lock:
            reports.append(report)

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return reports


# -- processes: one SQLite file -------------------------------------------------------------------


def sqlite_writer(path: str, operations: int, outside: int, inside: int, turns: int,
                  barrier: Any, reports: Any) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA synchronous = NORMAL")
    turn = os.open(path + "-writers", os.O_RDWR | os.O_CREAT, 0o644)
    row = os.getpid() % 64
    barrier.wait()
    clock, mine = time.perf_counter, []
    start = clock()
    for _ in range(operations):
        before = clock()
        for _ in range(turns):
            work(outside)
            fcntl.flock(turn, fcntl.LOCK_EX)
            try:
                conn.execute("BEGIN IMMEDIATE")
                work(inside)
                conn.execute("UPDATE counters SET value = value + 1 WHERE id = ?", (row,))
                conn.execute("COMMIT")
            finally:
                fcntl.flock(turn, fcntl.LOCK_UN)
        mine.append(clock() - before)
    reports.put((start, clock(), mine))


def sqlite_run(writers: int, *, operations: int, outside: int, inside: int, turns: int,
               workdir: Path) -> list[Report]:
    path = str(workdir / f"ceiling-{next(_files)}.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
    conn.executemany("INSERT INTO counters VALUES (?, 0)", [(i,) for i in range(64)])
    conn.close()
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(writers), context.Queue()
    processes = [context.Process(target=sqlite_writer, daemon=True, args=(
        path, operations // writers, outside, inside, turns, barrier, queue))
        for _ in range(writers)]
    for process in processes:
        process.start()
    reports = [queue.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    return reports


# -- the table ----------------------------------------------------------------------------------


def measure(run: Callable[[int], list[Report]], counts: list[int], runs: int,
            operations: int) -> dict[int, Row]:
    rows = {n: Row() for n in counts}
    for _ in range(runs):
        for n in counts:  # in turns, so that every N sees the same machine
            reports = run(n)
            start = min(report[0] for report in reports)
            end = max(report[1] for report in reports)
            rows[n].rates.append(operations // n * n / (end - start))
            for report in reports:
                rows[n].latencies.extend(report[2])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=None, help="runs per row; 5")
    parser.add_argument("--writers", default="1,8", help="writer counts N")
    parser.add_argument("--quick", action="store_true", help="a smoke test: fewer operations")
    parser.add_argument("--fan-in-us", type=float, default=25.0,
                        help="pure-Python work of one memory fan-in fire, in microseconds")
    parser.add_argument("--every-us", type=float, default=160.0,
                        help="pure-Python work of one memory andEvery fire")
    parser.add_argument("--sqlite-fan-in", default="40,115",
                        help="a SQLite fan-in fire: microseconds outside,inside its one turn")
    parser.add_argument("--sqlite-every", default="60,165",
                        help="each of the three turns of a SQLite andEvery fire: outside,inside")
    options = parser.parse_args()
    counts = [int(n) for n in options.writers.split(",") if n.strip()]
    runs = options.runs or (2 if options.quick else 5)
    operations = QUICK_OPERATIONS if options.quick else OPERATIONS
    speed = calibrate()
    print(f"triggerhooks ceilings: {os.cpu_count()} CPUs, {runs} runs per row, "
          f"{operations:,} operations per run, writers N = {options.writers}; "
          f"{speed:,.1f} loop iterations per microsecond", flush=True)
    shapes: list[tuple[str, Callable[[int], list[Report]]]] = []
    for label, micros in (("fan-in", options.fan_in_us), ("andEvery", options.every_us)):
        iterations = round(micros * speed)
        shapes.append((f"threads, {micros:g} us of work per fire ({label})",
                       partial(thread_run, operations=operations, iterations=iterations)))
    with tempfile.TemporaryDirectory(prefix="thceiling-") as workdir:
        for label, spec, turns in (("fan-in", options.sqlite_fan_in, 1),
                                   ("andEvery", options.sqlite_every, 3)):
            outside_us, inside_us = (float(part) for part in spec.split(","))
            outside, inside = round(outside_us * speed), round(inside_us * speed)
            shapes.append((f"sqlite, {turns} x ({outside_us:g} us, then {inside_us:g} us and a "
                           f"commit in a turn) per fire ({label})",
                           partial(sqlite_run, operations=operations, outside=outside,
                                   inside=inside, turns=turns, workdir=Path(workdir))))
        width = max(len(name) for name, _ in shapes)
        print(f"\n  {'workload':<{width}}  N   ops/s (median)  vs N=1  p50 ms  p99 ms")
        for name, run in shapes:
            rows = measure(run, counts, runs, operations)
            base = rows[counts[0]].rate
            for n in counts:
                row = rows[n]
                print(f"  {name:<{width}}  {n:<2} {row.rate:>14,.0f}  {row.rate / base:>5.2f}x  "
                      f"{row.quantile(0.5) * 1e3:>6.2f}  {row.quantile(0.99) * 1e3:>6.2f}",
                      flush=True)
    print("\n  (under 1.00x: the writers only share the rate of one, and lose some of it to "
          "taking turns)")


if __name__ == "__main__":
    main()
