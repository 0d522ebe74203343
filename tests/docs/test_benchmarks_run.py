"""The benchmarks run to the end on every built-in backend and print their tables (briefly:
``--quick``)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.backends import POSTGRES_URL, REDIS_URL
from tests.helpers import ROOT

BACKENDS = ("memory", "sqlite", "redis", "postgresql")


@pytest.mark.slow  # writer processes for SQLite, Redis and PostgreSQL: 45 s or more on 2 cores
def test_the_contention_benchmark_runs_quick_on_every_backend() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "contention.py"), "--quick", "--runs", "1",
         "--processes", "1,2", "--backends", ",".join(BACKENDS), "--redis-url", REDIS_URL,
         "--postgres-url", POSTGRES_URL],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for backend in BACKENDS:
        assert any(line.startswith(f"{backend}: writers") for line in lines), done.stdout
        assert f"{backend}: targets" in lines, done.stdout
    header = [line.split() for line in lines if line.strip().startswith("scenario  N  ")]
    assert len(header) == len(BACKENDS), done.stdout
    assert "run dropped" not in done.stdout  # every writer reported, every run was checked
    # The targets' first column: errors, lost, stuck and duplicated, all zero, per scenario.
    counts = re.findall(r"^  (fan-in|andEvery|sessions) +(\d+) (yes|NO) ", done.stdout, re.M)
    assert len(counts) == 3 * len(BACKENDS), done.stdout
    assert all(count == "0" and verdict == "yes" for _, count, verdict in counts), done.stdout


@pytest.mark.slow  # creates 1,110 sessions on each backend
def test_the_sessions_benchmark_runs_quick_on_every_backend() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sessions.py"), "--quick",
         "--backends", ",".join(BACKENDS), "--redis-url", REDIS_URL,
         "--postgres-url", POSTGRES_URL],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = re.findall(r"^([a-z]+) +([\d,]+) +(\d+) +[\d.]+ ", done.stdout, re.M)
    assert [(backend, size, shown) for backend, size, shown in rows] == [
        (backend, size, shown) for backend in BACKENDS
        for size, shown in (("10", "10"), ("100", "50"), ("1,000", "50"))], done.stdout


def test_the_ceilings_benchmark_prints_every_workload_for_every_writer_count() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ceilings.py"), "--quick", "--runs", "1",
         "--writers", "1,2"],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = re.findall(r"^  (threads|sqlite), .+\((fan-in|andEvery)\) +(\d) +[\d,]+ +([\d.]+)x ",
                      done.stdout, re.M)
    assert [(kind, shape, n) for kind, shape, n, _ in rows] == [
        (kind, shape, n) for kind in ("threads", "sqlite") for shape in ("fan-in", "andEvery")
        for n in "12"], done.stdout
    assert all(ratio == "1.00" for _, _, n, ratio in rows if n == "1"), done.stdout
