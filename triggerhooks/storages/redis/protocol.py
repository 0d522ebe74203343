"""The commit script's interface, by name: its keys, its arguments and its replies.

The script (``commit.lua``, shipped next to this module and loaded once) reads
the part of a session a :class:`Plan` names, checks what a transition relied on,
and commits; every rule stays in :mod:`triggerhooks.core.rules`. Only this
module knows the positions of what goes in and comes out:

- ``KEYS``: :class:`SessionKeys`, the session's ten hashes and its turn (sent
  encoded once per storage).
  ``cfg`` task -> configuration JSON; ``idx`` trigger -> :class:`IndexEntry`
  JSON; ``kw`` trigger -> latest kwargs (present = fired); ``ts`` task ->
  TaskState JSON; ``tv`` task -> version (see :func:`.facts.bumps_version`);
  ``inst`` instance -> JSON; ``meta``: ``cv`` (a token renewed by every
  configuration and by the first write after a session was created or
  cleared), ``order`` (task names), ``counted``, ``unresolved``, ``m:<key>``
  (metadata), ``w:<writer>`` (the number of the writer's last writing call: see
  :class:`Stamp`); ``mc`` task -> how many of its ``requires`` have not fired;
  ``fk`` fire key -> the record (JSON) of its firing (see :attr:`Plan.key`);
  ``fst`` trigger -> the record of its first firing (``core.types.first_record``);
  ``turn``: the token of a writer that holds the session's turn (a string with
  a short time to live). Every key but the turn gets the session's time to live.
- ``ARGV`` (:func:`plan_args`): the :class:`Mode`, the plan (inline limit, full,
  trigger, fire key, the instances and their tasks), the turn token, the
  turn's length and the session's time to live; then for :attr:`Mode.RECORD`
  :func:`record_args` (a :class:`Stamp`, the kwargs to record and, with a fire
  key, its provisional record), for :attr:`Mode.SETTLE` a :class:`Stamp`, for a
  check or a commit :func:`commit_args`: a :class:`CommitHeader` (a stamp first),
  then what the transition relied on (:class:`Checks`: with a fire key, its
  record's digest; then counted groups) and what it writes (:class:`Writes`; with
  a fire key, the record to store after the groups). Everything is checked
  before anything is written. (Every argument costs the client time to encode:
  what only a keyed plan needs is sent only with a key.)
- Replies: a read answers a :class:`Snapshot` (:func:`read_reply`); a record a
  :class:`Recorded` (:func:`record_reply`); a check or a commit :class:`Passed`
  or, when something read has changed, a :class:`Conflict` carrying a fresh
  snapshot (:func:`commit_reply`); a settle whether the stamped call was applied
  (:func:`settle_reply`). A write while another writer holds the turn answers
  :data:`BUSY`, and so does a copy of a writing call that was answered already
  without applying anything. Every reply is one flat array (a status, then its
  parts, each list after its length): Redis converts each table of a reply on its
  own, at about a microsecond apiece.

Resends. A writing call (record, commit) carries a :class:`Stamp`: the id of a
writer, checked out of the process's pool for one transition (so one writer never
has two calls in flight), and a number that rises with each of its calls. The
script keeps each writer's last number in ``meta`` (``w:<writer>``, read with the
counters), marked when the call applied nothing: a call whose number is not above
it is a copy of a call already answered (sent again after a
connection error, or its first send came late) and applies nothing; a copy of an
applied commit answers :class:`Passed` with ``replayed`` (and the renumbering the
commit did), any other copy :data:`BUSY`. ``meta`` grows by one field per writer
(a process's pool holds one per transition it runs at once) of every process
that ever wrote to the session.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from enum import StrEnum
from importlib.resources import files
from typing import Any, NamedTuple
from urllib.parse import quote

from ...core.types import Plan
from ...models import split_instance_name

__all__ = [
    "BUSY",
    "INLINE_LIMIT",
    "NO_STAMP",
    "SCRIPT",
    "SCRIPT_SHA",
    "Busy",
    "Checks",
    "CommitHeader",
    "Conflict",
    "FullSnapshot",
    "Head",
    "IndexEntry",
    "Mode",
    "Passed",
    "PlannedSnapshot",
    "Recorded",
    "SessionKeys",
    "Snapshot",
    "Stamp",
    "Turn",
    "Writes",
    "active_key",
    "commit_args",
    "commit_reply",
    "pairs",
    "plan_args",
    "read_reply",
    "record_args",
    "record_reply",
    "settle_reply",
]

SCRIPT = files(__package__).joinpath("commit.lua").read_text(encoding="utf-8")
"""The script's source, read once per process."""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
INLINE_LIMIT = 4096
"""Kwargs up to this many bytes come with a read; longer ones only when a task needs them."""


class SessionKeys(NamedTuple):
    """The keys of one session, in the order the script takes them as ``KEYS``."""

    cfg: str
    idx: str
    kw: str
    ts: str
    tv: str
    inst: str
    meta: str
    mc: str
    fk: str
    fst: str
    turn: str

    @classmethod
    def of(cls, prefix: str, uid: str) -> SessionKeys:
        """``<prefix>:{<uid>}:<part>``: the uid, percent-escaped so that distinct uids never
        collide, is the hash tag that keeps a session in one Redis Cluster slot."""
        tag = f"{{{quote(uid, safe='')}}}"
        base = f"{prefix}:{tag}:" if prefix else f"{tag}:"
        return cls(*(base + part for part in cls._fields))


def active_key(prefix: str) -> str:
    """The set of the sessions under ``prefix`` with work scheduled or running (members: their
    percent-escaped uid, as in their keys' hash tag), passed to the script after the session's
    keys. It is shared by every session: with Redis Cluster it would need one per slot."""
    return f"{prefix}:th-active" if prefix else "th-active"


class Mode(StrEnum):
    """What a script call does (``ARGV[1]``)."""

    READ = "r"
    RECORD = "f"
    """Record the plan's firing at once (unless its trigger brings its own instance), then read."""
    CHECK = "v"
    COMMIT = "c"
    RELEASE = "u"
    """Give the session's turn back (a transition that held it failed)."""
    SETTLE = "q"
    """Whether a stamped call was applied; if it was not, it never will be (its number is
    taken: a copy of it still on its way applies nothing)."""


class Turn(NamedTuple):
    """A writer's claim to the session's turn (an empty token: none), and the session's
    time to live."""

    token: str = ""
    ms: int = 500
    ttl_ms: str = ""
    """``""`` leaves the keys' time to live alone."""


class IndexEntry(NamedTuple):
    """What a firing of one trigger concerns, stored per trigger in ``idx``."""

    tasks: list[str]
    """The tasks whose ``after``, ``andEvery`` or ``unless`` name it."""
    unless: list[str]
    """Every ``unless`` trigger of those tasks: a firing asks whether they fired."""
    requiring: list[str]
    """The tasks with the trigger in ``requires``: its first firing counts them down."""
    every: list[str]
    """The tasks it is the ``andEvery`` trigger of: each firing brings them an instance."""


_LIMIT = str(INLINE_LIMIT).encode()


def plan_args(mode: str, plan: Plan, turn: Turn, payload: Iterable[Any] = ()) -> tuple[Any, ...]:
    """``ARGV``: the mode, the part of the session the plan names, the turn, then
    ``payload`` (what the mode takes after them), in the one tuple a call is packed from."""
    names = plan.instances
    if not names:  # (a fire's plan: the common case, built without a loop)
        return (mode, _LIMIT, b"1" if plan.full else b"0", plan.trigger or "", plan.key or "",
                b"0", *turn, *payload)
    return (mode, _LIMIT, b"1" if plan.full else b"0", plan.trigger or "", plan.key or "",
            len(names), *names, *[split_instance_name(name)[0] for name in names], *turn,
            *payload)


class Stamp(NamedTuple):
    """What makes a writing call recognizable when it arrives twice: its writer's id and
    the call's number, higher than any earlier call of that writer. Sent as one argument,
    ``<writer>:<number>`` (:attr:`arg`; ``""``: a call that writes nothing)."""

    writer: str
    number: str

    @property
    def arg(self) -> str:
        return f"{self.writer}:{self.number}" if self.writer else ""


NO_STAMP = Stamp("", "")


def record_args(stamp: Stamp, kwargs: bytes, at: str, provisional: bytes | None) -> list[Any]:
    """The rest of ``ARGV`` for :attr:`Mode.RECORD`: ``at`` is the time of the firing (kept
    in ``fst`` with a first firing), ``provisional`` the record stored with the firing
    under the plan's key (only with a key)."""
    args: list[Any] = [stamp.arg, kwargs, at]
    if provisional is not None:
        args.append(provisional)
    return args


class CommitHeader(NamedTuple):
    """The fixed arguments of a check or a commit, after the plan."""

    stamp: str
    """The :attr:`Stamp.arg` of a commit; empty for a check."""
    expected_cv: bytes
    new_cv: bytes
    """``b""`` keeps the configuration token."""
    configured: str
    """``"1"`` when the commit writes a new configuration."""
    fired_count: int | str
    """How many triggers had fired when the transition read the whole session (a
    configuration counts each task's missing triggers from that); ``""``: no check."""
    counted: int | str
    """``""`` keeps the counter."""
    unresolved: int | str
    """``""``: the script counts the tasks the commit makes resolved or unresolved."""


class Checks(NamedTuple):
    """What a transition relied on; the script refuses to commit if any of it changed."""

    fire_key: str | None
    """With a plan's key (else ``None``, not sent): SHA-1 (hex) of the key's record as
    read, ``""`` when it was not recorded. The script checks it first."""
    versions: Mapping[str, int]
    """Task -> the version of its state that was read: it counts the task's instances, so
    it changes when one is created (the same ``andEvery`` slot, a one-shot task run twice)."""
    instances: Mapping[str, str]
    """Instance -> SHA-1 (hex) of the JSON that was read, ``""`` when it did not exist."""
    unfired: Collection[str]
    """Triggers read as not fired."""
    kwargs: Mapping[str, str]
    """Trigger -> SHA-1 (hex) of the kwargs that were read."""
    waiting: Mapping[str, int]
    """Task -> how much the commit counts it down; the transition found it still waiting
    after that, so the count must stay above it."""


class Writes(NamedTuple):
    """What a commit writes, every value already encoded."""

    fired: Mapping[str, bytes]
    firsts: Mapping[str, bytes]
    """Trigger -> the record of its first firing, for the triggers that fired for the first
    time (kept if ``fst`` holds none yet)."""
    first_fired: Mapping[str, int]
    """Task -> how many of its ``requires`` fired for the first time."""
    instances: Mapping[str, bytes]
    states: Mapping[str, bytes]
    """Task -> what changed in its state (JSON): ``n`` the number of instances, ``o`` the
    unresolved instances set and ``x`` those resolved, ``l`` the logs set and ``y`` those
    resolved, ``c`` whether the task counts towards finalization, ``v`` whether the
    state's version moves on (see :func:`.facts.bumps_version`), ``r`` the number of the
    first new instance that may take another (:attr:`Changes.renumber`): the script
    gives them the next free numbers instead, and ``u`` with it when the task was not
    blocked (the script refuses the commit if it is blocked now). Applied onto the stored
    state, so that edits of different instances of one task commit side by side."""
    metadata: Mapping[str, bytes]
    """``m:<key>`` -> JSON."""
    fire_record: bytes | None = None
    """With a plan's key (else ``None``, not sent): the record stored under it (``b""``:
    none)."""
    configs: Mapping[str, bytes] | None = None
    """Task -> configuration JSON, when the configuration changes (else ``None``)."""
    trigger_index: Mapping[str, bytes] | None = None
    """Trigger -> :class:`IndexEntry` JSON, with ``configs``."""
    missing: Mapping[str, int] | None = None
    """Task -> how many of its ``requires`` have not fired, with ``configs``."""
    counting: Sequence[str] = ()
    """With ``configs``: the tasks that count towards finalization (the script counts
    the unresolved ones among them as stored)."""
    order: bytes = b""
    """The task names (JSON), with ``configs``."""


def _group(args: list[Any], pairs: Mapping[str, Any]) -> None:
    """A counted group of (key, value) pairs: the count, then the pairs flat."""
    args.append(len(pairs))
    for pair in pairs.items():
        args += pair


def commit_args(header: CommitHeader, checks: Checks, writes: Writes) -> list[Any]:
    """The rest of ``ARGV`` for a check or a commit."""
    args: list[Any] = list(header)
    if checks.fire_key is not None:
        args.append(checks.fire_key)
    _group(args, checks.versions)
    _group(args, checks.instances)
    args.append(len(checks.unfired))
    args += checks.unfired
    _group(args, checks.kwargs)
    _group(args, checks.waiting)
    for group in (writes.fired, writes.firsts, writes.first_fired, writes.instances,
                  writes.states, writes.metadata):
        _group(args, group)
    if writes.fire_record is not None:
        args.append(writes.fire_record)
    if writes.configs is not None:
        _group(args, writes.configs)
        _group(args, writes.trigger_index or {})
        _group(args, writes.missing or {})
        args.append(writes.order)
        args.append(len(writes.counting))
        args += writes.counting
    return args


class Head(NamedTuple):
    """What every snapshot starts with: the configuration token, the counters and the
    record of the plan's fire key."""

    cv: bytes
    counted: int
    unresolved: int
    finalized: bool
    record: bytes | None = None
    """The record (JSON) stored under the plan's key, if any."""


class FullSnapshot(NamedTuple):
    """A full plan's read: the whole session but its instances (lists are flat pairs)."""

    head: Head
    configs: Sequence[bytes]
    """Task, configuration JSON, task, ..."""
    states: Sequence[bytes]
    """Task, state JSON, ..."""
    versions: Sequence[bytes]
    """Task, version, ..."""
    fired: Sequence[bytes]
    """Every fired trigger."""
    order: bytes | None
    missing: Sequence[bytes]
    """Task, count of missing triggers, ..."""


class PlannedSnapshot(NamedTuple):
    """The part of a session a plan names: the head, the plan's trigger's index entry, and
    the rest of the flat reply from ``at`` on, read in one pass by
    :func:`.facts.read_facts`. There, each list comes after its length:

    - the tasks the trigger concerns, then the instances' tasks; after them, as many
      configurations, as many states, versions and counts of missing triggers (``None``:
      absent);
    - the triggers read (the unless triggers of the concerned tasks, every ``requires``
      trigger of those that are ready, or that this firing makes ready, and could
      schedule, then the plan's trigger unless the same call recorded its firing); after
      them, as many kwargs (only their length beyond ``INLINE_LIMIT``; ``None``: not fired);
    - the first firings' records of those triggers (as their kwargs), or none at all when
      no task is ready: only the instances a ready task schedules need them;
    - the plan's instances' JSON, in its order;
    - the unstarted instances of the tasks that are ready and could schedule (the
      instances that become scheduled); after them, as many JSON.
    """

    head: Head
    entry: bytes | None
    """The plan's trigger's :class:`IndexEntry` (JSON), if it concerns any task."""
    raw: Sequence[Any]
    at: int


Snapshot = FullSnapshot | PlannedSnapshot


class Passed(NamedTuple):
    """Every check passed (and a commit was written): the session's counters after it."""

    counted: int
    unresolved: int
    finalized: bool
    replayed: bool
    """The commit had already been applied (a resent commit whose first reply was lost);
    ``shifts`` are those of that application, the counters are the session's now."""
    shifts: dict[str, int]
    """Task -> how far the numbers of its renumberable new instances moved (see
    :attr:`Writes.states`); none when they took the numbers the transition gave them."""


class Conflict(NamedTuple):
    """Something the transition relied on has changed; ``snapshot`` is read afresh."""

    what: str
    snapshot: Snapshot


class Busy:
    """Another writer holds the session's turn: nothing was written; try again shortly."""

    def __repr__(self) -> str:
        return "BUSY"


BUSY = Busy()


class Recorded(NamedTuple):
    """The reply to :attr:`Mode.RECORD`: whether the firing was recorded, and a read of
    the plan (after the firing, when it was)."""

    recorded: bool
    snapshot: Snapshot


def _snapshot(raw: Sequence[Any], at: int, full: bool) -> Snapshot:
    """The snapshot that fills ``raw`` (a flat reply) from ``at`` on: the head, then each
    part, a list preceded by its length (see ``snapshot`` in ``commit.lua``)."""
    cv, counted, unresolved, finalized, record, extra = raw[at:at + 6]
    head = Head(cv or b"", int(counted) if counted else 0,
                int(unresolved) if unresolved else 0, bool(finalized), record or None)
    if not full:
        return PlannedSnapshot(head, extra or None, raw, at + 6)
    at += 6
    parts = []
    for _ in range(5):
        size = raw[at]
        parts.append(raw[at + 1:at + 1 + size])
        at += 1 + size
    configs, states, versions, fired, missing = parts
    return FullSnapshot(head, configs, states, versions, fired, extra, missing)


def record_reply(raw: Sequence[Any], plan: Plan) -> Recorded | Busy:
    """The reply to :attr:`Mode.RECORD`."""
    if raw[0] == b"busy":
        return BUSY
    return Recorded(raw[0] == b"recorded", _snapshot(raw, 1, plan.full))


def read_reply(raw: Sequence[Any], plan: Plan) -> Snapshot:
    """The reply to :attr:`Mode.READ`."""
    return _snapshot(raw, 1, plan.full)


def commit_reply(raw: Sequence[Any], plan: Plan) -> Passed | Conflict | Busy:
    """The reply to :attr:`Mode.CHECK` or :attr:`Mode.COMMIT`."""
    status = raw[0]
    if status == b"busy":
        return BUSY
    if status == b"conflict":
        return Conflict(raw[1].decode(), _snapshot(raw, 2, plan.full))
    shifts = {task.decode(): int(shift) for task, shift in pairs(raw[4:])} if len(raw) > 4 else {}
    return Passed(int(raw[1]), int(raw[2]), bool(raw[3]), status == b"done", shifts)


def settle_reply(raw: Sequence[Any]) -> bool:
    """The reply to :attr:`Mode.SETTLE`: whether the stamped call was applied."""
    return bool(raw[0] == b"applied")


def pairs(flat: Sequence[bytes]) -> Iterable[tuple[bytes, bytes]]:
    """``[k1, v1, k2, v2, ...]`` (as HGETALL answers inside the script) as (key, value) pairs."""
    return zip(flat[::2], flat[1::2], strict=True)
