"""``triggerhooks recover``, driven as an operator would: the console script in a subprocess,
on a SQLite file a test process left stuck sessions in."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.cli.test_cli import ok, run, user_error
from tests.recovery_helpers import RECORD, DroppingRunner, open_work, runs, started, with_record
from triggerhooks import SqliteStorageBackend, TaskStatus, TriggerManager
from triggerhooks.core.leases import Lease
from triggerhooks.runners import task_runners
from triggerhooks.storages import Plan, StorageBackend
from triggerhooks.testing import expire_claim, registered_class, run_transition, wait_for

pytestmark = pytest.mark.slow  # every test starts the console script in a subprocess

GRACE = "0.3"
IMPORTS = ("--import", "tests.recovery_helpers")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite3"


@pytest.fixture
def url(db: Path) -> str:
    return f"sqlite:///{db}"


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "runs.log"


@pytest.fixture
def dropping() -> Iterator[type[DroppingRunner]]:
    class Dropping(DroppingRunner):
        dropped: ClassVar[list[str]] = []

    with registered_class(task_runners, "dropping", Dropping):
        yield Dropping


def recover(*args: str, url: str, quiet: bool = True) -> Any:
    """``triggerhooks recover ARGS``; ``-q`` (no signals printed) unless ``quiet`` is False."""
    return run(*IMPORTS, *(["-q"] if quiet else []), "recover", *args, url=url,
               env={"TRIGGERHOOKS_CLAIM_GRACE_SECONDS": GRACE})


def lost(db: Path, uid: str, record: Path, **tasks: Any) -> StorageBackend:
    """A session whose instance ``t#0`` was never handed off (the process that fired died
    first), its cascade ``next`` waiting; once stuck (after the grace time)."""
    storage = SqliteStorageBackend(uid, db)
    manager = TriggerManager(storage, task_runner="dropping", claim_grace_seconds=float(GRACE))
    manager.update_configuration({
        "t": {"after": ["go"], "run": RECORD, "withParams": with_record(record)},
        "next": {"after": ["t"], "run": RECORD, "withParams": with_record(record)}, **tasks})
    manager.fire("go")
    wait_for(lambda: len(manager.stuck()) == len(open_work(storage)), 10, "the grace time")
    return storage


def test_dry_run_lists_then_recover_runs_once_then_there_is_nothing_to_recover(
        db: Path, url: str, record: Path, dropping: type[DroppingRunner]) -> None:
    storage = lost(db, "s1", record)
    before = storage["t#0"]

    listed = ok(recover("s1", "--dry-run", url=url))
    assert "stuck instances (1 session)" in listed
    assert "s1" in listed and "t#0" in listed and "unclaimed" in listed
    found = json.loads(ok(recover("s1", "--dry-run", "--json", url=url)))
    assert found == [{"instance": "t#0", "status": "scheduled", "reason": "unclaimed",
                      "since": found[0]["since"], "worker": None, "attempt": None,
                      "exhausted": False}]
    assert storage["t#0"] == before and started(record) == Counter()  # a dry run changes nothing

    done = json.loads(ok(recover("s1", "--json", url=url)))

    assert done == [{"action": "handed off", "instance": "t#0", "reason": "unclaimed"}]
    assert started(record) == Counter({"t#0": 1, "next#0": 1})
    assert {pid for _, _, pid in runs(record)} != {os.getpid()}  # it ran in the command
    assert open_work(storage) == {} and storage.is_finalized
    assert "nothing to recover in 1 session" in ok(recover("s1", url=url))
    assert started(record) == Counter({"t#0": 1, "next#0": 1})


def test_the_table_says_what_was_done_and_a_worker_lost_too_often_fails_its_instance(
        db: Path, url: str, record: Path, dropping: type[DroppingRunner]) -> None:
    storage = lost(db, "s2", record, other={"after": ["go"], "run": RECORD,
                                            "withParams": with_record(record)})
    for worker in ("w1@host", "w2@host", "w3@host"):
        assert run_transition(storage, Plan(instances=("other#0",)), lambda t, w=worker: t.claim(
            "other#0", Lease(30, w))).changes.result is not None
        expire_claim(storage, "other#0")

    listed = json.loads(ok(recover("s2", "--dry-run", "--json", url=url)))
    assert {entry["instance"]: (entry["worker"], entry["attempt"], entry["exhausted"])
            for entry in listed} == {"t#0": (None, None, False),
                                     "other#0": ("w3@host", 3, True)}

    table = ok(recover("s2", url=url))

    assert "recovered (1 session)" in table
    rows = [[cell.strip() for cell in line.strip("│ ").split("│")]
            for line in table.splitlines() if line.startswith("│")]
    assert sorted(rows) == [["s2", "other#0", "failed", "lease expired"],
                            ["s2", "t#0", "handed off", "unclaimed"]]
    assert storage["other#0"].status is TaskStatus.FAILED
    assert storage["other#0"].metadata["exceptionType"] == "triggerhooks.exceptions.WorkerLostError"
    assert started(record) == Counter({"t#0": 1, "next#0": 1})


def test_recover_json_prints_json_only(db: Path, url: str, record: Path,
                                       dropping: type[DroppingRunner]) -> None:
    lost(db, "s4", record)
    done = json.loads(ok(recover("s4", "--json", url=url, quiet=False)))
    assert done == [{"action": "handed off", "instance": "t#0", "reason": "unclaimed"}]


def test_a_session_must_be_named_or_all_of_them_asked_for(url: str) -> None:
    assert "name a SESSION or pass --all (not both)" in user_error(recover(url=url), code=2)
    assert "name a SESSION or pass --all (not both)" in user_error(
        recover("s1", "--all", url=url), code=2)


def test_all_sessions_of_an_empty_storage_is_nothing_to_do(url: str) -> None:
    assert json.loads(ok(recover("--all", "--json", url=url))) == {}
    assert json.loads(ok(recover("--all", "--json", url="memory://"))) == {}
    assert "nothing to recover in 0 sessions" in ok(recover("--all", url="memory://"))


def test_a_stuck_instance_whose_runner_the_command_lacks_fails_it_after_the_others(
        db: Path, url: str, record: Path, dropping: type[DroppingRunner]) -> None:
    """The command has no ``dropping`` runner (it is registered in this process only): it
    says so on one line and exits 1, once it recovered what it could.

    How it went wrong before the fix: the recovery logged the error it was about to raise,
    with its traceback, before the command's one-line message."""
    storage = lost(db, "s3", record, lost={"after": ["go"], "run": RECORD, "using": "dropping",
                                           "withParams": with_record(record)})
    error = user_error(recover("s3", url=url))
    assert "unknown task runner 'dropping'" in error
    assert started(record) == Counter({"t#0": 1, "next#0": 1})
    assert storage["lost#0"].status is TaskStatus.SCHEDULED


def test_recover_all_recovers_every_stuck_session_of_a_sqlite_file(
        db: Path, url: str, record: Path, dropping: type[DroppingRunner]) -> None:
    sessions = [lost(db, uid, record) for uid in ("a", "b")]
    done = json.loads(ok(recover("--all", "--json", url=url)))
    assert done == {uid: [{"action": "handed off", "instance": "t#0", "reason": "unclaimed"}]
                    for uid in ("a", "b")}
    assert all(open_work(storage) == {} for storage in sessions)


def test_recovering_a_session_that_does_not_exist_says_so_and_creates_nothing(
        tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite3"
    error = user_error(recover("nosuch", "--dry-run", url=f"sqlite:///{missing}"))
    assert "no session 'nosuch'" in error
    assert not missing.exists()
