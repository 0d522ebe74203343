"""Hostile input to a session, on every storage: refused with an error of our own that names
the input and the problem, before anything is stored.

One test per row of the hostile-input report: NaN and infinities, a reserved task name,
lone surrogates, kwargs nested as deep as an encoder allows.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from triggerhooks import (
    ConfigurationError,
    InvalidSessionError,
    InvalidTriggerError,
    StorageBackend,
    TriggerhooksError,
    TriggerManager,
    UnstorableKwargsError,
)
from triggerhooks.serialization import MAX_DEPTH
from triggerhooks.testing.contract import StorageFactory

NOT_FINITE = [math.nan, math.inf, -math.inf]


def nested(depth: int, leaf: Any = 1) -> Any:
    """A mapping ``depth`` levels deep (``{"k": {"k": ... leaf}}``)."""
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


# -- NaN and infinities: JSON has none, orjson would silently write null ------------------------

@pytest.mark.parametrize("number", NOT_FINITE, ids=repr)
def test_kwargs_holding_nan_or_infinity_are_refused(manager: TriggerManager, number: float) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}})
    before = manager.storage.debug_repr()
    with pytest.raises(UnstorableKwargsError) as caught:
        manager.fire("a", {"page": [1, {"score": number}]})
    assert str(caught.value) == (f"kwargs of trigger 'a' cannot be stored as JSON: {number!r} at "
                                 "page[1].score (JSON has no NaN or Infinity)")
    assert manager.storage.debug_repr() == before


@pytest.mark.parametrize("number", NOT_FINITE, ids=repr)
def test_with_params_and_extras_holding_nan_or_infinity_are_refused(
        manager: TriggerManager, number: float) -> None:
    with pytest.raises(ConfigurationError) as caught:
        manager.update_configuration({
            "t_params": {"after": ["a"], "run": "tests.echo",
                         "withParams": {"scoring": {"weights": [0.5, number]}}},
            "t_extras": {"after": ["a"], "run": "tests.echo", "threshold": number},
        })
    assert [(p.location, p.message) for p in caught.value.problems] == [
        ("t_params.withParams.scoring",
         f"the value cannot be stored as JSON: {number!r} at weights[1] (JSON has no NaN or "
         "Infinity)"),
        ("t_extras.threshold",
         f"the value cannot be stored as JSON: {number!r} at the top (JSON has no NaN or "
         "Infinity)"),
    ]
    assert manager.storage.tasks == {}


def test_a_result_or_metadata_holding_nan_is_refused_too(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.boom"}})
    manager.fire("a")
    with pytest.raises(UnstorableKwargsError, match=r"metadata of t#0 .* nan at x"):
        manager.update_instance_metadata("t#0", {"x": math.nan})
    with pytest.raises(UnstorableKwargsError, match=r"result for skipped t#0 .* inf at y"):
        manager.skip_failed_instance("t#0", cascade=True, result={"y": math.inf})
    assert manager.storage["t#0"].status == "failed"


# -- a reserved name ------------------------------------------------------------------------------

def test_a_task_named_session_finalized_is_refused(manager: TriggerManager) -> None:
    with pytest.raises(ConfigurationError) as caught:
        manager.update_configuration({
            "sessionFinalized": {"after": ["a"], "run": "tests.echo"},
            "t": {"after": ["a"], "run": "tests.noop"},
        })
    [problem] = caught.value.problems
    assert problem.location == "sessionFinalized"
    assert "'sessionFinalized' is reserved by triggerhooks" in problem.message
    assert manager.storage.tasks == {}
    # Waiting for it stays what it is for.
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"},
                                  "report": {"after": ["sessionFinalized"], "run": "tests.noop"}})
    manager.fire("a")
    assert manager.storage.is_finalized
    assert manager.storage["report#0"].status == "finished"


# -- lone surrogates: UTF-8 cannot hold them, so neither can SQLite nor Redis -----------------------

def test_a_uid_with_a_lone_surrogate_is_refused(make_storage: StorageFactory) -> None:
    with pytest.raises(InvalidSessionError) as caught:
        make_storage("session-\udc80")
    assert str(caught.value) == ("session uid 'session-\\\\udc80' contains a lone surrogate "
                                 "(\\udc80 at position 8), which UTF-8 cannot hold")


@pytest.mark.parametrize("name", ["page\ud800", "\udfff"])
def test_a_trigger_name_or_key_with_a_lone_surrogate_is_refused(manager: TriggerManager,
                                                                name: str) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo"}})
    before = manager.storage.debug_repr()
    with pytest.raises(InvalidTriggerError, match="contains a lone surrogate"):
        manager.fire(name, {"x": 1})
    if manager.storage.supports_fire_keys:
        with pytest.raises(InvalidTriggerError, match=r"fire key .* contains a lone surrogate"):
            manager.fire("a", key=name)
    assert manager.storage.debug_repr() == before
    assert manager.storage.get(f"t{name}#0") is None


def test_names_with_a_lone_surrogate_are_refused_in_a_configuration(
        manager: TriggerManager) -> None:
    with pytest.raises(ConfigurationError) as caught:
        manager.update_configuration({
            "t\udc80": {"after": ["a"], "run": "tests.echo"},
            "u": {"after": ["a\udc80"], "unless": ["b\ud800"], "run": "tests.echo",
                  "note\udc81": 1, "withParams": {"p\udc82": {"q": 1}}},
        })
    found = {problem.location: problem.message for problem in caught.value.problems}
    assert set(found) == {"t\\udc80", "u.after[0]", "u.unless[0]", "u.note\\udc81",
                          "u.withParams.p\\udc82"}
    assert all("lone surrogate" in message for message in found.values())
    assert manager.storage.tasks == {}


# -- nesting: kwargs an encoder refuses once they are part of an instance -----------------------

def test_kwargs_nested_too_deeply_are_refused_when_fired(manager: TriggerManager) -> None:
    """252 levels used to be stored, and then broke the configuration that gave them an
    instance ("instance t#0 cannot be stored")."""
    with pytest.raises(UnstorableKwargsError) as caught:
        manager.fire("a", nested(252))
    message = str(caught.value)
    assert message.startswith(f"kwargs of trigger 'a' cannot be stored: nested more than "
                              f"{MAX_DEPTH} levels deep (at k.k.k")
    assert manager.storage.debug_repr()["latestKwargs"] == {}


def test_kwargs_as_deep_as_allowed_go_everywhere(manager: TriggerManager) -> None:
    deepest = nested(MAX_DEPTH - 1, {})
    manager.fire("a", deepest)
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"},
                                  "u": {"after": ["a"], "andEvery": "b", "run": "tests.noop"}})
    manager.fire("b", deepest)
    assert manager.storage["t#0"].status == "finished"
    assert manager.storage["t#0"].kwargs == {"a": deepest}
    assert manager.storage["u#0"].kwargs["b"] == deepest


@pytest.mark.parametrize("where", ["withParams", "extras"])
def test_a_configuration_nested_too_deeply_is_refused(manager: TriggerManager, where: str) -> None:
    task: dict[str, Any] = {"after": ["a"], "run": "tests.echo"}
    if where == "withParams":
        task["withParams"] = {"p": nested(MAX_DEPTH + 1)}
    else:
        task["deep"] = nested(MAX_DEPTH + 1)
    with pytest.raises(ConfigurationError, match=f"nested more than {MAX_DEPTH} levels deep"):
        manager.update_configuration({"t": task})
    assert manager.storage.tasks == {}


def test_a_cyclic_value_is_refused_not_looped_over(manager: TriggerManager) -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(UnstorableKwargsError, match="nested more than"):
        manager.fire("a", cyclic)
    with pytest.raises(ConfigurationError):
        manager.update_configuration({"t": {"after": ["a"], "run": "tests.echo",
                                            "withParams": {"p": cyclic}}})


def test_every_refusal_is_one_of_ours(storage: StorageBackend) -> None:
    manager = TriggerManager(storage)
    for attempt in (lambda: manager.fire("a", {"x": math.nan}),
                    lambda: manager.fire("a\udc80"),
                    lambda: manager.fire("a", nested(300)),
                    lambda: manager.update_configuration({"sessionFinalized": {
                        "after": ["a"], "run": "tests.echo"}})):
        with pytest.raises(TriggerhooksError):
            attempt()
