"""The soak: real Celery workers, real faults, fires from several processes; then an audit.

One run (:func:`run_soak`) starts, all of its own,

* a Redis server (append-only, ``appendfsync always``) holding the sessions —
  and the broker's queues when the broker is ``redis`` — that the faults kill
  and restart;
* with ``rabbitmq``, a vhost on the RabbitMQ at 127.0.0.1:5672 (deleted at the end);
* ``workers`` Celery workers (prefork pool, ``concurrency`` children each) that
  run the sweeper over the run's storage, with a short lease, grace and sweep
  interval; a supervisor thread restarts any worker that exits, as operators must;
* ``fire_processes`` processes that fire every session's triggers with fire keys,
  retrying on errors (a repeat of a stored key must say ``repeated=True``).

Meanwhile the faults land: ``child`` (SIGKILL of one pool child), ``worker``
(SIGKILL of a whole worker, its pool included) and ``redis`` (SIGKILL of the
Redis server, restarted on its append-only file). Then the run waits for the
work to drain and audits: nothing ``scheduled`` or ``running`` (and
``manager.stuck()`` empty), every acknowledged fire's instances finished
(``lost`` counts those that are not), no instance ended twice (the tasks'
``task_completed``/``task_failed`` receivers record every end), no instance
more than the firings call for (``extra``), and every stored outcome made by a
run that really started (its claim token among the recorded starts).

Also a script: ``python celery_soak.py fire SPEC OUT`` is one fire process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triggerhooks.ext import wait_for

HERE = Path(__file__).resolve().parent
RECORDS_URL = os.environ.get("TH_CELERY_TEST_REDIS", "redis://127.0.0.1:6379/0")
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"

WORKFLOW: dict[str, Any] = {
    "fanIn": {"after": ["a", "b", "c"], "run": "soak.step"},  # a 3-trigger fan-in ...
    "step1": {"after": ["fanIn"], "run": "soak.step"},  # ... and its 2-step cascade
    "step2": {"after": ["step1"], "run": "soak.step"},
    "perPage": {"after": ["a"], "andEvery": "page", "run": "soak.step"},
    "flaky": {"after": ["b"], "run": "soak.flaky"},  # retries once where b says so
}
PAGES = 3
FAULT_KINDS = ("child", "worker", "redis")


@dataclass
class SoakConfig:
    broker: str = "redis"
    sessions: int = 30
    fire_seconds: float = 20.0
    faults: tuple[str, ...] = ("child", "worker", "redis", "child")
    """Fault kinds, landing evenly spread over the first 80% of the firing."""
    workers: int = 2
    concurrency: int = 2
    fire_processes: int = 3
    flaky_share: float = 0.05
    repeat_share: float = 0.1
    lease: float = 3.0
    grace: float = 3.0
    sweep_interval: float = 2.0
    drain_timeout: float = 90.0
    seed: int = 0
    log_dir: Path = field(default_factory=lambda: Path(os.environ.get("TMPDIR", "/tmp")))

    @property
    def drain_bound(self) -> float:
        """The documented drain time after a fault: lease + grace + sweep interval (its
        jitter included)."""
        return self.lease + self.grace + 1.2 * self.sweep_interval


@dataclass
class SoakResult:
    broker: str
    faults: list[str]
    fires: int = 0
    acked: int = 0
    repeats: int = 0
    not_repeated: list[Any] = field(default_factory=list)
    fire_errors: dict[str, int] = field(default_factory=dict)
    instances: int = 0
    finished: int = 0
    stuck: list[str] = field(default_factory=list)
    open: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    twice_ended: list[str] = field(default_factory=list)
    unstarted_outcomes: list[str] = field(default_factory=list)
    unrecorded_ends: int = 0
    starts: int = 0
    restarted_runs: int = 0
    retried: int = 0
    worker_restarts: int = 0
    drain_seconds: float | None = None
    wall_seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not (self.stuck or self.open or self.lost or self.extra or self.twice_ended
                    or self.unstarted_outcomes or self.not_repeated
                    or self.acked != self.fires)

    def summary(self) -> str:
        return (f"{self.broker} faults={','.join(self.faults) or '-'}: fires {self.acked}/"
                f"{self.fires} (repeats {self.repeats}), instances {self.instances} "
                f"(finished {self.finished}), stuck {len(self.stuck)}, open {len(self.open)}, "
                f"lost {len(self.lost)}, extra {len(self.extra)}, twice-ended "
                f"{len(self.twice_ended)}, starts {self.starts} (again after a kill "
                f"{self.restarted_runs}), retried {self.retried}, worker restarts "
                f"{self.worker_restarts}, drain {self._drain()}, fire errors "
                f"{self.fire_errors or '-'}, wall {self.wall_seconds:.1f}s")

    def _drain(self) -> str:
        return "never" if self.drain_seconds is None else f"{self.drain_seconds:.1f}s"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.1) -> Any:
    return wait_for(condition, timeout, what, interval=interval)


# -- services -------------------------------------------------------------------------


class RedisServer:
    """A redis-server of the run's own, append-only, that faults kill and restart."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir),
                   "--save", "", "--logfile", str(self.dir / "redis.log")]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.ping, 30, f"redis-server on port {self.port}")

    def ping(self) -> bool:
        import redis

        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server exited: {self.dir / 'redis.log'}")
        with suppress(redis.RedisError), redis.Redis(port=self.port) as client:
            return bool(client.ping())
        return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@contextmanager
def rabbitmq_vhost(name: str) -> Iterator[str]:
    """A vhost of the run's own on the local RabbitMQ (guest may use it); its broker URL."""
    def ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                       timeout=60)

    ctl("add_vhost", name)
    try:
        ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"{RABBITMQ}/{name}"
    finally:
        ctl("delete_vhost", name)


class SoakWorker:
    """One ``celery worker`` (prefork pool), its log in a file."""

    def __init__(self, name: str, log_dir: Path, env: dict[str, str], concurrency: int) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.env = env
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None
        self._log_from = 0

    @property
    def hostname(self) -> str:
        return f"{self.name}@soak"

    def start(self) -> None:
        command = [sys.executable, "-m", "celery", "-A", "triggerhooks_celery", "worker",
                   "-P", "prefork", "-c", str(self.concurrency), "-n", self.hostname,
                   "-I", "celery_soak_tasks", "--without-gossip", "--without-mingle",
                   "--without-heartbeat", "--loglevel=INFO"]
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, cwd=HERE, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def ready(self) -> bool:
        with self.log.open("rb") as log:
            log.seek(self._log_from)
            return f"{self.hostname} ready.".encode() in log.read()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def children(self) -> list[int]:
        assert self.process is not None
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with suppress(OSError):
            return [int(pid) for pid in path.read_text().split()]
        return []

    def kill(self) -> None:
        """SIGKILL of the whole worker: its main process and its pool."""
        assert self.process is not None
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def kill_child(self, rng: random.Random) -> bool:
        """SIGKILL of one pool child (the main process replaces it)."""
        children = self.children()
        if not children:
            return False
        with suppress(ProcessLookupError):
            os.kill(rng.choice(children), signal.SIGKILL)
        return True

    def stop(self) -> None:
        if not self.alive:
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, size: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""


class Supervisor:
    """Restarts any worker that exited (killed by a fault, or fallen over with its broker)."""

    def __init__(self, workers: list[SoakWorker]) -> None:
        self.workers = workers
        self.restarts = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak supervisor", daemon=True)

    def start(self) -> Supervisor:
        with self.lock:
            for worker in self.workers:
                worker.start()
        wait_until(lambda: all(w.ready() for w in self.workers), 60, "the workers to be ready")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with self.lock:
                for worker in self.workers:
                    if not worker.alive:
                        worker.start()
                        self.restarts += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self.lock:
            for worker in self.workers:
                worker.stop()


# -- the plan of fires ------------------------------------------------------------------


def plan_fires(config: SoakConfig, uids: list[str]) -> list[list[Any]]:
    """Every fire of every session: ``[uid, trigger, kwargs, key, repeat]``, shuffled."""
    rng = random.Random(config.seed)
    flaky = {uid for uid in uids if rng.random() < config.flaky_share} | set(uids[:1])
    fires: list[list[Any]] = []
    for uid in uids:
        fires.append([uid, "a", {"n": 1}, "a", False])
        fires.append([uid, "b", {"flaky": uid in flaky}, "b", False])
        fires.append([uid, "c", {}, "c", False])
        fires += [[uid, "page", {"page": p}, f"page-{p}", False] for p in range(PAGES)]
    rng.shuffle(fires)
    for fire in fires:
        fire[4] = rng.random() < config.repeat_share
    return fires


# -- one fire process ---------------------------------------------------------------------


def fire_once(manager: Any, trigger: str, kwargs: Any, key: str, deadline: float,
              errors: Counter[str]) -> str | None:
    """Fire until it is acknowledged (``stored``, ``repeated``, or ``committed:<error>``: an
    error raised after the firing was stored); None if ``deadline`` passed first."""
    delay = 0.05
    while time.time() < deadline:
        try:
            firing = manager.fire(trigger, kwargs, key=key)
        except Exception as exc:  # every error is counted, and retried
            errors[type(exc).__name__] += 1
            if errors[type(exc).__name__] == 1:  # the first of each kind, in the fire log
                traceback.print_exc()
            if getattr(exc, "committed", None) is True:
                return f"committed:{type(exc).__name__}"
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            continue
        return "repeated" if firing.repeated else "stored"
    return None


def fire_main(spec_path: str, out_path: str) -> None:
    import celery_soak_tasks  # noqa: F401 - the tasks the workflow names

    from triggerhooks import TriggerManager, open_storage

    spec = json.loads(Path(spec_path).read_text())
    managers: dict[str, Any] = {}
    errors: Counter[str] = Counter()
    acked: list[list[Any]] = []
    not_repeated: list[Any] = []
    repeats = 0
    for n, (uid, trigger, kwargs, key, repeat) in enumerate(spec["fires"]):
        pause = spec["start"] + n * spec["pace"] - time.time()
        if pause > 0:
            time.sleep(pause)  # pacing: the fires spread over the firing phase
        manager = managers.get(uid) or managers.setdefault(
            uid, TriggerManager(open_storage(spec["storage"], uid), task_runner="celery"))
        how = fire_once(manager, trigger, kwargs, key, spec["deadline"], errors)
        if how is None:
            continue
        acked.append([uid, trigger, key, how, time.time()])
        if repeat:
            repeats += 1
            again = fire_once(manager, trigger, kwargs, key, spec["deadline"], errors)
            if again != "repeated" and not (again or "").startswith("committed:"):
                not_repeated.append([uid, key, again])
    Path(out_path).write_text(json.dumps({
        "acked": acked, "errors": errors, "repeats": repeats, "not_repeated": not_repeated}))


# -- a run ------------------------------------------------------------------------------------


class Soak:
    """The services, workers and fire processes of one run."""

    def __init__(self, config: SoakConfig, broker_url: str, redis: RedisServer,
                 work_dir: Path) -> None:
        self.config = config
        self.redis = redis
        self.dir = work_dir
        self.prefix = f"th-soak-{uuid.uuid4().hex[:10]}:"
        self.storage_url = f"{redis.url(0)}?prefix=soak"
        self.env = {
            **os.environ, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "TRIGGERHOOKS_CELERY_CONFIG": "celery_soak_config", "SOAK_BROKER_URL": broker_url,
            "SOAK_STORAGE_URL": self.storage_url, "TRIGGERHOOKS_STORAGE_URL": self.storage_url,
            "SOAK_RECORDS_URL": RECORDS_URL, "SOAK_PREFIX": self.prefix,
            "SOAK_LEASE": str(config.lease), "SOAK_GRACE": str(config.grace),
            "SOAK_SWEEP_INTERVAL": str(config.sweep_interval)}
        self.env.pop("CELERY_BROKER_URL", None)
        self.workers = [SoakWorker(f"soak{n + 1}", work_dir, self.env, config.concurrency)
                        for n in range(config.workers)]
        self.supervisor = Supervisor(self.workers)
        self.rng = random.Random(config.seed + 1)
        self.last_fault = 0.0

    def storage(self, uid: str) -> Any:
        from triggerhooks import open_storage

        return open_storage(self.storage_url, uid)

    def configure(self, uids: list[str]) -> None:
        import celery_soak_tasks  # noqa: F401 - the tasks the workflow names

        from triggerhooks import TriggerManager

        for uid in uids:
            TriggerManager(self.storage(uid), task_runner="celery").update_configuration(WORKFLOW)

    def start_fires(self, fires: list[list[Any]]) -> list[tuple[subprocess.Popen[bytes], Path]]:
        config = self.config
        start = time.time() + 0.5
        processes = []
        for n in range(config.fire_processes):
            mine = fires[n::config.fire_processes]
            spec, out = self.dir / f"fires-{n}.json", self.dir / f"fired-{n}.json"
            spec.write_text(json.dumps({
                "storage": self.storage_url, "fires": mine, "start": start,
                "pace": config.fire_seconds / max(len(mine), 1),
                "deadline": start + config.fire_seconds + 60}))
            with (self.dir / f"fire-{n}.log").open("ab") as log:
                processes.append((subprocess.Popen(
                    [sys.executable, str(HERE / "celery_soak.py"), "fire", str(spec), str(out)],
                    cwd=HERE, env=self.env, stdout=log, stderr=subprocess.STDOUT), out))
        return processes

    def fault(self, kind: str) -> None:
        """One fault, now; returns when it is over (the server restarted, the kill done)."""
        if kind == "redis":
            self.redis.kill()
            time.sleep(1.0)  # the server stays down a while: a second of outage
            self.redis.start()
        else:
            with self.supervisor.lock:
                alive = [w for w in self.workers if w.alive]
                victim = self.rng.choice(alive) if alive else None
                if victim is not None and kind == "worker":
                    victim.kill()
                elif victim is not None:
                    victim.kill_child(self.rng)
        self.last_fault = time.monotonic()

    def play_faults(self, fires_done: Callable[[], bool]) -> None:
        faults = self.config.faults
        began = time.monotonic()
        for n, kind in enumerate(faults):
            at = began + self.config.fire_seconds * 0.8 * (n + 1) / (len(faults) + 1)
            wait_until(lambda at=at: time.monotonic() >= at or fires_done(),
                       self.config.fire_seconds + 60, "the time of a fault", interval=0.05)
            self.fault(kind)

    def records(self, key: str) -> list[dict[str, Any]]:
        import redis

        with redis.Redis.from_url(RECORDS_URL) as client:
            return [json.loads(raw) for raw in client.lrange(f"{self.prefix}{key}", 0, -1)]

    def drop_records(self) -> None:
        import redis

        with redis.Redis.from_url(RECORDS_URL) as client:
            client.delete(f"{self.prefix}starts", f"{self.prefix}ends")


def expected_counts(acked: set[str]) -> dict[str, int]:
    """How many instances of each task the acknowledged fires of a session call for
    (``flaky``: its last instance, which must be finished)."""
    counts: dict[str, int] = {}
    if {"a", "b", "c"} <= acked:
        counts.update(fanIn=1, step1=1, step2=1)
    if "a" in acked:
        counts["perPage"] = sum(1 for key in acked if key.startswith("page-"))
    if "b" in acked:
        counts["flaky"] = 1
    return counts


_OPEN = ("scheduled", "running")


def session_audit(storage: Any, acked: set[str], result: SoakResult, grace: float,
                  started: set[str]) -> bool:
    """Audit one session into ``result``; whether its expected work is all done."""
    from triggerhooks import TriggerManager
    from triggerhooks.ext import claim_of

    uid = storage.uid
    instances = list(storage.instances.values())
    result.instances += len(instances)
    result.stuck += [f"{uid}/{s.instance}" for s in
                     TriggerManager(storage, claim_grace_seconds=grace).stuck()]
    result.open += [f"{uid}/{i.name}" for i in instances if i.status.value in _OPEN]
    by_task: dict[str, list[Any]] = {}
    for instance in instances:
        by_task.setdefault(instance.name.split("#")[0], []).append(instance)
        claim = claim_of(instance)
        if instance.status.value == "finished":
            result.finished += 1
            if claim is None or claim.token not in started:
                result.unstarted_outcomes.append(f"{uid}/{instance.name}")
    done = True
    for task, count in expected_counts(acked).items():
        found = sorted(by_task.get(task, []), key=lambda i: int(i.name.split("#")[1]))
        if task == "flaky":
            found = [i for i in found if i.status.value != "replayed"]
        finished = [i for i in found if i.status.value == "finished"]
        missing = max(count - len(finished), 0)
        result.lost += [f"{uid}/{task} ({len(finished)}/{count} finished)"] * bool(missing)
        result.extra += [f"{uid}/{i.name}" for i in found[count:]]
        done = done and not missing
    return done


def audit(soak: Soak, uids: list[str], acked: dict[str, set[str]], result: SoakResult) -> bool:
    """Fill ``result`` from the storage and the records; whether everything drained."""
    for name in ("instances", "finished"):
        setattr(result, name, 0)
    for name in ("stuck", "open", "lost", "extra", "twice_ended", "unstarted_outcomes"):
        setattr(result, name, [])
    starts, ends = soak.records("starts"), soak.records("ends")
    started = {start["token"] for start in starts}
    result.starts = len(starts)
    result.restarted_runs = sum(1 for start in starts if (start["attempt"] or 1) > 1)
    done = all([session_audit(soak.storage(uid), acked.get(uid, set()), result,
                              soak.config.grace, started) for uid in uids])
    ended = Counter((end["session"], end["instance"]) for end in ends)
    result.twice_ended = [f"{uid}/{name} x{n}" for (uid, name), n in ended.items() if n > 1]
    result.unrecorded_ends = max(result.finished - len(ended), 0)
    result.retried = sum(1 for end in ends if end["instance"].startswith("flaky#1"))
    return done and not result.open


def collect_fires(processes: list[tuple[subprocess.Popen[bytes], Path]], result: SoakResult,
                  timeout: float) -> tuple[dict[str, set[str]], float]:
    """Wait for the fire processes; the acknowledged keys by session, and the time of the
    last acknowledgement."""
    acked: dict[str, set[str]] = {}
    errors: Counter[str] = Counter()
    last = 0.0
    for process, out in processes:
        process.wait(timeout)
        data = json.loads(out.read_text())
        for uid, _trigger, key, _how, at in data["acked"]:
            acked.setdefault(uid, set()).add(key)
            last = max(last, at)
        result.acked += len(data["acked"])
        result.repeats += data["repeats"]
        result.not_repeated += data["not_repeated"]
        errors.update(data["errors"])
    result.fire_errors = dict(errors)
    return acked, last


def run_soak(config: SoakConfig) -> SoakResult:
    """One soak run (see the module's documentation)."""
    began = time.monotonic()
    run_dir = config.log_dir / f"soak-{config.broker}-{uuid.uuid4().hex[:6]}"
    (run_dir / "redis").mkdir(parents=True)
    redis_server = RedisServer(run_dir / "redis")
    redis_server.start()
    try:
        with broker(config, redis_server) as broker_url:
            result = _run(config, Soak(config, broker_url, redis_server, run_dir))
    finally:
        redis_server.kill()
    result.wall_seconds = time.monotonic() - began
    return result


@contextmanager
def broker(config: SoakConfig, redis_server: RedisServer) -> Iterator[str]:
    if config.broker == "redis":
        yield redis_server.url(1)
    elif config.broker == "rabbitmq":
        with rabbitmq_vhost(f"th-soak-{uuid.uuid4().hex[:8]}") as url:
            yield url
    else:
        raise ValueError(f"broker must be redis or rabbitmq, not {config.broker!r}")


def _run(config: SoakConfig, soak: Soak) -> SoakResult:
    result = SoakResult(config.broker, list(config.faults))
    uids = [f"soak-{n:04d}" for n in range(config.sessions)]
    soak.configure(uids)
    fires = plan_fires(config, uids)
    result.fires = len(fires)
    soak.supervisor.start()
    try:
        processes = soak.start_fires(fires)
        soak.play_faults(lambda: all(p.poll() is not None for p, _ in processes))
        acked, last_ack = collect_fires(processes, result, config.fire_seconds + 120)
        calm = max(soak.last_fault, time.monotonic() - (time.time() - last_ack))
        with suppress(AssertionError):
            wait_until(lambda: audit(soak, uids, acked, result), config.drain_timeout,
                       "the work to drain", interval=0.5)
            result.drain_seconds = time.monotonic() - calm
        audit(soak, uids, acked, result)
        result.worker_restarts = soak.supervisor.restarts
    finally:
        soak.supervisor.stop()
        soak.drop_records()
    return result


if __name__ == "__main__" and sys.argv[1:2] == ["fire"]:
    fire_main(sys.argv[2], sys.argv[3])
