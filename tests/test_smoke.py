from __future__ import annotations

from triggerhooks import TriggerManager


def test_fan_in_runs_once_all_triggers_fired(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a", "b"], "run": "tests.echo"}})
    manager.fire("b", {"y": 2})
    assert manager.storage.instances == {}
    manager.fire("a", {"x": 1})
    instance = manager.storage["t#0"]
    assert instance.status == "finished"
    assert instance.metadata["result"] == {"received": {"a": {"x": 1}, "b": {"y": 2}}}
