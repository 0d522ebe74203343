"""Per-hop latency of a triggerhooks cascade chain on Celery against a plain Celery chain.

Run: ``python benchmarks/celery_chain.py`` (options: ``--length``, ``--rounds``,
``--workers``, ``--redis``), with the plugin installed
(``pip install -e . -e plugins/triggerhooks-celery``) and Redis running.

Both chains run the same no-op tasks on the same workers (solo pool, one
message at a time) and the same Redis, as broker and result backend:

* ``celery chain``: ``chain(noop.si(), noop.si(), ...)``, timed until the
  last task's result is in the backend;
* ``triggerhooks cascade``: tasks ``c0 .. cN-1``, each ``after`` the previous
  one, fired once, timed until the last instance is ``finished`` in the
  session storage (Redis when the core has it, else SQLite). Each hop is a
  claim, a run, a completion with its cascade (storage transactions), and a
  message.

Rounds alternate between the two so the ratio holds on a shared, noisy
machine; the table shows medians. Everything the run creates in Redis lives
under one key prefix, deleted at the end; the workers are always stopped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

CONFIG = '''
import os
PREFIX = os.environ["TH_BENCH_PREFIX"]
broker_url = result_backend = os.environ["TH_BENCH_REDIS"]
broker_transport_options = {"global_keyprefix": PREFIX}
result_backend_transport_options = {"global_keyprefix": PREFIX}
worker_enable_remote_control = False
worker_send_task_events = False
'''

TASKS = '''
from triggerhooks import TriggerTask
from triggerhooks_celery import get_app


class Noop(TriggerTask):
    name = "bench.noop"

    def _run(self, context):
        return {}


@get_app().task(name="bench.plain_noop")
def plain_noop():
    return None
'''


@contextmanager
def workers(count: int, directory: Path, env: dict[str, str]) -> Iterator[None]:
    """``count`` solo-pool Celery workers, ready on entry, stopped on exit."""
    processes = []
    logs = []
    try:
        for n in range(count):
            log = directory / f"w{n}.log"
            logs.append(log)
            with log.open("wb") as out:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "triggerhooks_celery", "worker",
                     "-P", "solo", "-c", "1", "-n", f"bench{n}@%h", "-I", "bench_tasks",
                     "--without-gossip", "--without-mingle", "--without-heartbeat",
                     "--loglevel=INFO"],
                    cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True))
        ready_by = time.monotonic() + 30
        while not all("ready." in log.read_text(errors="replace") for log in logs):
            if time.monotonic() > ready_by or any(p.poll() is not None for p in processes):
                raise SystemExit("workers did not start:\n" + "\n".join(
                    log.read_text(errors="replace") for log in logs))
            time.sleep(0.05)
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def wait(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=50, help="tasks per chain (50)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each chain (5)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="broker, backend")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="th-bench-celery-"))
    prefix = f"th-bench-celery-{uuid.uuid4().hex[:8]}:"
    (directory / "bench_celeryconfig.py").write_text(CONFIG)
    (directory / "bench_tasks.py").write_text(TASKS)
    env = {**os.environ, "TH_BENCH_PREFIX": prefix, "TH_BENCH_REDIS": args.redis,
           "TRIGGERHOOKS_CELERY_CONFIG": "bench_celeryconfig",
           "PYTHONPATH": os.pathsep.join([str(directory), os.environ.get("PYTHONPATH", "")])}
    os.environ.update({key: env[key] for key in
                       ("TH_BENCH_PREFIX", "TH_BENCH_REDIS", "TRIGGERHOOKS_CELERY_CONFIG")})
    sys.path.insert(0, str(directory))
    client = redis.Redis.from_url(args.redis)

    import bench_tasks  # type: ignore[import-not-found]
    from celery import chain

    from triggerhooks import TriggerManager
    from triggerhooks.storages import SqliteStorageBackend, StorageBackend, storage_backends

    def new_storage() -> StorageBackend:
        uid = f"{prefix}session-{uuid.uuid4().hex[:8]}"
        if "redis" in storage_backends:
            return storage_backends.get("redis", uid, args.redis, prefix=f"{prefix}sessions")
        return SqliteStorageBackend(uid, directory / "sessions.sqlite3")

    storage_kind = "redis" if "redis" in storage_backends else "sqlite"
    length = args.length

    def plain_round() -> float:
        start = time.perf_counter()
        result = chain(*[bench_tasks.plain_noop.si() for _ in range(length)]).apply_async()
        result.get(timeout=120, interval=0.002)
        return time.perf_counter() - start

    def cascade_round() -> float:
        storage = new_storage()
        manager = TriggerManager(storage, task_runner="celery")
        manager.update_configuration({
            f"c{n}": {"after": ["start" if n == 0 else f"c{n - 1}"], "run": "bench.noop"}
            for n in range(length)})
        last = f"c{length - 1}#0"
        start = time.perf_counter()
        manager.fire("start")

        def done() -> bool:
            instance = storage.get(last)
            return instance is not None and instance.status == "finished"

        wait(done)
        elapsed = time.perf_counter() - start
        storage.clear()
        return elapsed

    results: dict[str, list[float]] = {"celery chain": [], "triggerhooks cascade": []}
    try:
        with workers(args.workers, directory, env):
            plain_round()
            cascade_round()  # warm both paths (imports, connections)
            for _ in range(args.rounds):
                results["celery chain"].append(plain_round())
                results["triggerhooks cascade"].append(cascade_round())
    finally:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        shutil.rmtree(directory, ignore_errors=True)

    plain = statistics.median(results["celery chain"]) / length
    print(f"{length}-task chains, {args.rounds} rounds, {args.workers} solo workers, "
          f"Redis broker and backend, session storage: {storage_kind}")
    print()
    print(f"| {'chain':<22} | {'total ms':>9} | {'per hop ms':>10} | {'ratio':>6} |")
    print(f"| {'-' * 22} | {'-' * 8}: | {'-' * 9}: | {'-' * 5}: |")
    for name, times in results.items():
        total = statistics.median(times)
        hop = total / length
        print(f"| {name:<22} | {total * 1000:9.1f} | {hop * 1000:10.2f} | {hop / plain:6.2f} |")


if __name__ == "__main__":
    main()
