"""A stored task configuration is parsed once per process, not on every fire: a fan-in
task after hundreds of triggers would otherwise cost each fire more than everything else."""

from __future__ import annotations

from typing import Any

import pytest

from triggerhooks import TriggerManager
from triggerhooks.models import TaskConfig
from triggerhooks.testing.contract import StorageFactory

TRIGGERS = [f"t{i:03d}" for i in range(500)]


def test_fires_into_a_fan_in_parse_its_configuration_once(
        make_storage: StorageFactory, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = make_storage()
    TriggerManager(storage).update_configuration(
        {"fan": {"after": TRIGGERS, "run": "tests.record"}, "small": {"after": ["t000"],
                                                                     "run": "tests.record"}})
    parsed: list[str] = []
    original = TaskConfig.from_json.__func__  # type: ignore[attr-defined]

    def counting(cls: type[TaskConfig], name: str, data: Any) -> TaskConfig:
        parsed.append(name)
        return original(cls, name, data)  # type: ignore[no-any-return]

    monkeypatch.setattr(TaskConfig, "from_json", classmethod(counting))
    manager = TriggerManager(make_storage(storage.uid))  # as another process would open it
    for trigger in TRIGGERS[1:101]:
        manager.fire(trigger, {"n": trigger})
    assert parsed.count("fan") <= 1, f"{backend}: parsed {parsed.count('fan')} times"
    assert manager.storage.instances_of_task("fan")[0].status.value == "unstarted"
