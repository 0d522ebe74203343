"""JSON encoding of everything a storage keeps (never pickle), and the dotted names it
keeps for classes."""

from __future__ import annotations

import hashlib
import inspect
import math
import reprlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from .exceptions import UnstorableKwargsError

__all__ = ["MAX_DEPTH", "JsonDict", "dotted_name", "dumps", "dumps_mapping", "dumps_value",
           "kwargs_digest", "loads", "safe_text", "storable"]

JsonDict = dict[str, Any]

# orjson would turn datetimes and dataclasses into strings and dicts that come
# back as something else; refuse them, so a caller converts them knowingly.
# (Tuples are stored as lists, and subclasses of str, int, dict and list as
# their base type: JSON has nothing else.)
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

loads = orjson.loads


MAX_DEPTH = 200
"""How deeply a value given to be stored (trigger kwargs, a task's result, metadata,
``withParams``, extras) may nest: the value itself is level 1 (``{}``), each mapping or
list inside it one more. A stored value sits a few levels down in the documents
triggerhooks writes (an instance's JSON, a background call sent to a worker: at most 8
levels more), and orjson refuses documents deeper than 254 levels, so the limit keeps
that room: a value accepted here is never refused later, as part of another document."""
_ENCODER_DEPTH = 254
"""The deepest document orjson encodes."""


def dumps(value: Any, what: str = "value") -> bytes:
    """Encode ``value`` as JSON, or raise :class:`UnstorableKwargsError` naming ``what``.

    For documents triggerhooks builds itself; what a caller gives goes through
    :func:`dumps_value`, which also refuses NaN, infinities and values nested too deeply."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError as exc:
        raise UnstorableKwargsError(f"{what} cannot be stored as JSON: {exc}") from None


def _place(path: list[str | int]) -> str:
    """A place in a value, as people write it: ``responses.q1[0]``; ``the top`` for none."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text or "the top"


def _children(node: Any) -> list[tuple[str | int, Any]]:
    if isinstance(node, Mapping):
        return list(node.items())
    if isinstance(node, (list, tuple)):
        return list(enumerate(node))
    return []


def _find(value: Any, wanted: Callable[[Any, int], bool]) -> tuple[str, Any] | None:
    """The place (see :func:`_place`) and the node of the first node, depth first, for
    which ``wanted(node, depth)`` holds."""
    stack: list[tuple[Any, int, list[str | int]]] = [(value, 1, [])]
    while stack:
        node, depth, path = stack.pop()
        if wanted(node, depth):
            place = safe_text(_place(path))
            return (place if len(place) <= 80 else f"{place[:40]}...{place[-37:]}"), node
        for key, child in reversed(_children(node)):
            stack.append((child, depth + 1, [*path, key]))
    return None


def _not_finite(node: Any, depth: int) -> bool:
    return isinstance(node, float) and not math.isfinite(node)


def _too_deep(node: Any, depth: int) -> bool:
    return depth > MAX_DEPTH and isinstance(node, (Mapping, list, tuple))


def _nests_too_deeply(value: Any) -> bool:
    """Whether ``value`` nests deeper than :data:`MAX_DEPTH` (orjson counts, in C)."""
    for _ in range(_ENCODER_DEPTH - MAX_DEPTH):
        value = [value]
    try:
        orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        return True
    return False


def dumps_value(value: Any, what: str) -> bytes:
    """Encode a value given to be stored, or raise :class:`UnstorableKwargsError` naming
    ``what`` and where in it the problem is: anything JSON cannot hold, NaN and infinities
    (JSON has none; orjson would write ``null``), nesting deeper than :data:`MAX_DEPTH`.

    Costs one encoding: the checks only look further when the encoding has a ``null`` or
    more brackets than the depth allows."""
    try:
        raw = orjson.dumps(value, option=_OPTIONS)
    except TypeError as exc:
        if str(exc) != "Recursion limit reached":
            raise UnstorableKwargsError(f"{what} cannot be stored as JSON: {exc}") from None
        raw = b""
    if not raw or (len(raw) > 2 * MAX_DEPTH  # deeper takes two brackets a level
                   and raw.count(b"[") + raw.count(b"{") > MAX_DEPTH
                   and _nests_too_deeply(value)):
        found = _find(value, _too_deep)
        where = "" if found is None else f" (at {found[0]})"
        raise UnstorableKwargsError(
            f"{what} cannot be stored: nested more than {MAX_DEPTH} levels deep{where}")
    if b"null" in raw:
        found = _find(value, _not_finite)
        if found is not None:
            raise UnstorableKwargsError(
                f"{what} cannot be stored as JSON: {found[1]!r} at {found[0]} "
                "(JSON has no NaN or Infinity)")
    return raw


def dumps_mapping(value: object, what: str) -> bytes:
    """Encode a mapping with string keys, rejecting anything else before it is stored
    (see :func:`dumps_value`)."""
    if value is None:
        return b"{}"
    if not isinstance(value, dict):  # (a dict, the usual value, skips the abstract check)
        if not isinstance(value, Mapping):
            raise UnstorableKwargsError(f"{what} must be a mapping, not {type(value).__name__}")
        value = dict(value)
    return dumps_value(value, what)


STORABLE_DEPTH = 32
"""How deep :func:`storable` keeps a value's structure before it describes the rest."""
_INT_RANGE = range(-(2**63), 2**64)


def safe_text(text: str) -> str:
    """``text`` with what UTF-8 cannot hold (a lone surrogate) escaped as ``\\udc80``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def storable(value: Any, depth: int = 0) -> Any:
    """A JSON-storable description of ``value``: its structure down to ``STORABLE_DEPTH``
    levels, strings escaped (:func:`safe_text`), anything else (and deeper) as a short repr.
    What an instance stores when what it produced cannot be stored as it is."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN or Infinity
    if value is None or isinstance(value, (bool, float)) or (
            isinstance(value, int) and value in _INT_RANGE):
        return value
    if depth < STORABLE_DEPTH:
        if isinstance(value, Mapping):
            return {safe_text(str(key)): storable(item, depth + 1) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [storable(item, depth + 1) for item in value]
    return safe_text(reprlib.repr(value))


def kwargs_digest(raw: bytes) -> str:
    """A digest of JSON kwargs that does not depend on the order of their keys."""
    canonical = orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha1(canonical, usedforsecurity=False).hexdigest()


def dotted_name(obj: Any) -> str:
    """``module.qualname`` of a class or function, for messages, logs and stored metadata.

    A decorated function is named after the function it wraps; an object
    without a qualified name after its class; a builtin by its bare name
    (``ValueError``).
    """
    target = inspect.unwrap(obj) if callable(obj) else obj
    module = getattr(target, "__module__", None) or "?"
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    return qualname if module == "builtins" else f"{module}.{qualname}"
