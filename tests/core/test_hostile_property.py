"""Generated bad input thrown at a session on every storage: each call either succeeds or
raises a ``TriggerhooksError``, and after an error the session is exactly as it was.

Hypothesis makes configurations, kwargs, uids and trigger names from values JSON cannot
hold (NaN, infinities, integers past 64 bits, bytes, sets, objects, keys that are not
strings), text UTF-8 cannot hold (lone surrogates), reserved names, values nested deeper
than any limit and values that hold themselves, mixed with good ones so that sessions
also change. ``max_examples`` keeps the run within seconds per storage.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triggerhooks import TriggerhooksError, TriggerManager
from triggerhooks.serialization import MAX_DEPTH
from triggerhooks.testing.contract import StorageFactory

EXAMPLES = 30
"""Sessions generated per storage (each gets several calls)."""

# Text of any code point, lone surrogates included (Hypothesis leaves them out by default).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=6)
reserved = st.sampled_from(["sessionFinalized", "", "#", "t#0", "a\udc80", "\ud800", "a.b",
                            "withParams", "after"])
names = st.one_of(st.sampled_from(["a", "b", "t", "u"]), reserved, any_text)
bad_keys = st.one_of(st.integers(), st.none(), st.binary(max_size=3))
not_names = st.one_of(bad_keys, st.lists(names, max_size=2))


def _nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"k": value}
    return value


def _cyclic(_: Any) -> Any:
    value: dict[str, Any] = {"x": 1}
    value["self"] = value
    return value


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**66), max_value=2**66),
    st.floats(),  # NaN and infinities included
    any_text, st.binary(max_size=3),
    st.sampled_from([datetime.datetime(2024, 1, 1), decimal.Decimal("1.5"), frozenset({1}),
                     object(), 1 + 2j]),
)
keys = st.one_of(names, st.integers(), st.none())
values = st.one_of(
    st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(keys, inner, max_size=3) | st.tuples(inner, inner),
                 max_leaves=8),
    st.integers(MAX_DEPTH - 2, MAX_DEPTH + 60).map(_nested),
    st.just(None).map(_cyclic),
)
kwargs = st.one_of(st.none(), st.dictionaries(st.one_of(names, st.integers()), values, max_size=3),
                   values)
trigger_lists = st.one_of(st.lists(st.one_of(names, not_names), max_size=3), names, not_names)
task = st.fixed_dictionaries({}, optional={
    "after": trigger_lists,
    "andEvery": st.one_of(names, not_names),
    "unless": trigger_lists,
    "withParams": st.one_of(st.dictionaries(keys, st.one_of(kwargs, values), max_size=2), values),
    "using": st.one_of(st.sampled_from(["inline", "nope"]), names),
    "run": st.one_of(st.sampled_from(["tests.noop", "tests.echo", "tests.boom"]), names),
    "unles": values,
    "and_every": names,
})
extras = st.dictionaries(st.one_of(names, st.integers()), values, max_size=2)
configuration = st.one_of(
    st.dictionaries(st.one_of(names, bad_keys),
                    st.one_of(st.builds(lambda t, e: {**e, **t}, task, extras), values),
                    max_size=3),
    values,
)
calls = st.lists(st.one_of(
    st.tuples(st.just("configure"), configuration),
    st.tuples(st.just("fire"), st.one_of(names, not_names), kwargs, st.one_of(st.none(), names)),
), min_size=1, max_size=5)


def _check(manager: TriggerManager, call: tuple[Any, ...]) -> None:
    """Make ``call``: success, or one of our errors with the session left exactly as it was."""
    before = manager.storage.debug_repr()
    try:
        if call[0] == "configure":
            manager.update_configuration(call[1])
        else:
            _, trigger, given_kwargs, key = call
            if not manager.storage.supports_fire_keys:
                key = None
            manager.fire(trigger, given_kwargs, key=key)
    except TriggerhooksError as exc:
        assert exc.committed is False
        assert manager.storage.debug_repr() == before, f"{type(exc).__name__}: {exc}"


@pytest.mark.usefixtures("isolated_signals")
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(uid=st.one_of(st.none(), names, not_names), calls=calls)
def test_bad_input_succeeds_or_raises_ours_and_changes_nothing(
        make_storage: StorageFactory, uid: Any, calls: list[tuple[Any, ...]]) -> None:
    if uid is not None:
        with contextlib.suppress(TriggerhooksError):
            make_storage(uid)
    manager = TriggerManager(make_storage())
    for call in calls:
        _check(manager, call)
