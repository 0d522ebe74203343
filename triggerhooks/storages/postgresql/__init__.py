"""Sessions in PostgreSQL: shared by every process that reaches the server, one transaction
per transition.

A transition takes its session's advisory lock (writers of one session take turns; other
sessions never wait), reads what its :class:`Plan` names and computes the change against
those live rows, then writes only what changed and commits: two round trips (psycopg's
pipeline mode), however large the session.

The modules, in the order a transition uses them: ``backend``
(:class:`PostgresStorageBackend`), ``connections`` (one pool per server and process,
errors, the tables created once, what became of a commit whose reply was lost), ``view``
(the :class:`SessionView` over live rows), ``writes`` (what a commit writes), ``schema``
(the tables and statements) and ``settings`` (URLs, options, names, references).

psycopg is an optional extra: ``pip install "triggerhooks[postgres]"``.
"""

from __future__ import annotations

from .backend import PostgresStorageBackend
from .settings import POSTGRES_URL_ENV

__all__ = ["POSTGRES_URL_ENV", "PostgresStorageBackend"]
