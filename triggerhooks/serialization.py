"""JSON encoding of everything a storage keeps (never pickle), and the dotted names it
keeps for classes."""

from __future__ import annotations

import hashlib
import inspect
import reprlib
from collections.abc import Mapping
from typing import Any

import orjson

from .exceptions import UnstorableKwargsError

__all__ = ["JsonDict", "dotted_name", "dumps", "dumps_mapping", "kwargs_digest", "loads",
           "safe_text", "storable"]

JsonDict = dict[str, Any]

# orjson would turn datetimes and dataclasses into strings and dicts that come
# back as something else; refuse them, so a caller converts them knowingly.
# (Tuples are stored as lists, and subclasses of str, int, dict and list as
# their base type: JSON has nothing else.)
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

loads = orjson.loads


def dumps(value: Any, what: str = "value") -> bytes:
    """Encode ``value`` as JSON, or raise :class:`UnstorableKwargsError` naming ``what``."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError as exc:
        raise UnstorableKwargsError(f"{what} cannot be stored as JSON: {exc}") from None


def dumps_mapping(value: object, what: str) -> bytes:
    """Encode a mapping with string keys, rejecting anything else before it is stored."""
    if value is None:
        return b"{}"
    if not isinstance(value, Mapping):
        raise UnstorableKwargsError(f"{what} must be a mapping, not {type(value).__name__}")
    if not isinstance(value, dict):
        value = dict(value)
    return dumps(value, what)


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
