"""Sessions in Redis: shared by every process on every server, one transition per round trip.

A transition computes its change in Python (:mod:`triggerhooks.core.rules`) against
what it knows of the part of the session its :class:`Plan` names, and commits
it with one script call that first checks that nothing it read has changed
(the versions of task states and instances, triggers seen as not fired, the
kwargs it used, the configuration). What it knows comes from a per-process
cache of what earlier transitions read and wrote, or, when that cache lacks
something, from a read in the same script (one more round trip). A failed
check answers with a fresh read, and the transition runs again on it. No
lock is held between calls, and nothing depends on how many instances a
session has.

The modules, in the order a transition uses them: ``backend``
(:class:`RedisStorageBackend`: the retry loop and the readers), ``cache`` (what
this process knows of each session), ``view`` (the :class:`SessionView` over
those facts, reading what they lack), ``client`` (one connection per URL and
process, the script by its SHA, errors, the process's pool of writer ids),
``wire`` (the script's calls, packed in one pass and sent on kept connections),
``protocol`` (the script's keys, arguments and replies by name), ``facts``
(what a read tells) and ``commit.lua`` (the script itself).
"""

from __future__ import annotations

from .backend import REDIS_PREFIX_ENV, REDIS_URL_ENV, RedisStorageBackend

__all__ = ["REDIS_PREFIX_ENV", "REDIS_URL_ENV", "RedisStorageBackend"]
