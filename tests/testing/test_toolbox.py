"""The testing toolbox: assertion helpers, the unittest mixin and the pytest plugin."""

from __future__ import annotations

import io
import textwrap
import unittest

import pytest

from triggerhooks import TriggerManager, signals
from triggerhooks.testing import (
    TriggerManagerTestCaseMixin,
    assert_instance_abandoned,
    assert_instance_failed,
    assert_instance_finished,
    assert_instance_missing,
    assert_instance_replayed,
    assert_instance_skipped,
    assert_instance_unstarted,
    assert_unresolved_instances,
    assert_unresolved_tasks,
    capture_signals,
)

pytest_plugins = ["pytester"]

WORKFLOW = {
    "t_ok": {"after": ["go"], "run": "tests.echo"},
    "t_bad": {"after": ["go"], "run": "tests.boom"},
    "t_every": {"after": ["never"], "andEvery": "page", "run": "tests.noop"},
    "t_vetoed": {"after": ["never"], "unless": ["stop"], "run": "tests.noop"},
}


@pytest.fixture
def fired(manager: TriggerManager) -> TriggerManager:
    manager.update_configuration(WORKFLOW)
    manager.fire("go", {"n": 1})
    manager.fire("page")
    manager.fire("stop")
    return manager


def test_passing_assertions(fired: TriggerManager) -> None:
    assert assert_instance_finished(fired, "t_ok#0", {"received": {"go": {"n": 1}}}).name == "t_ok#0"
    assert_instance_finished(fired.storage, "t_ok#0")
    assert_instance_failed(fired, "t_bad#0", ValueError)
    assert_instance_failed(fired, "t_bad#0", "ValueError")
    assert_instance_unstarted(fired, "t_every#0")
    assert_instance_abandoned(fired, "t_vetoed#0")
    assert_instance_missing(fired, "t_ok#1")
    assert_unresolved_tasks(fired, ["t_every", "t_bad"])
    assert_unresolved_instances(fired, ["t_bad#0", "t_every#0"])
    copy = fired.replay_failed_instance("t_bad#0")
    assert_instance_replayed(fired, "t_bad#0")
    fired.skip_failed_instance(copy)
    assert_instance_skipped(fired, copy.name)


def test_a_failure_shows_the_status_exception_and_traceback(fired: TriggerManager) -> None:
    with pytest.raises(AssertionError) as caught:
        assert_instance_finished(fired, "t_bad#0")
    message = str(caught.value)
    assert message.startswith("expected t_bad#0 to be finished, but t_bad#0 is failed")
    assert "exception: ValueError" in message
    assert "Traceback (most recent call last)" in message
    assert 'raise ValueError("boom")' in message

    with pytest.raises(AssertionError, match="expected t_bad#0 to fail with KeyError"):
        assert_instance_failed(fired, "t_bad#0", KeyError)
    with pytest.raises(AssertionError, match=r"finished with result .*'received'.*, expected \{\}"):
        assert_instance_finished(fired, "t_ok#0", {})
    with pytest.raises(AssertionError, match=r"has no such instance \(instances: t_bad#0, "):
        assert_instance_finished(fired, "t_nope#0")
    with pytest.raises(AssertionError, match="expected t_ok#0 not to exist, but t_ok#0 is finished"):
        assert_instance_missing(fired, "t_ok#0")
    with pytest.raises(AssertionError, match=r"missing: \['t_ok'\], unexpected: \['t_bad'\]"):
        assert_unresolved_tasks(fired, ["t_ok", "t_every"])
    with pytest.raises(AssertionError, match="t_bad#0: failed"):
        assert_unresolved_instances(fired, [])


def test_unittest_mixin_with_the_original_names(manager: TriggerManager) -> None:
    manager.update_configuration(WORKFLOW)

    class Case(TriggerManagerTestCaseMixin, unittest.TestCase):
        def setUp(self) -> None:
            self.manager = manager

        def test_passes(self) -> None:
            self.manager.fire("go")
            self.assertInstanceFinished("t_ok#0", {"received": {"go": {}}})
            self.assertInstanceFailed("t_bad#0", ValueError)
            self.assertInstanceMissing("t_every#0")
            self.assertUnresolvedTasks(["t_bad", "t_every", "t_vetoed"])
            self.assertUnresolvedInstances(["t_bad#0"])
            copy = self.manager.replay_failed_instance("t_bad#0")
            self.assertInstanceReplayed("t_bad#0")
            self.assertInstanceFailed(copy.name, ValueError)
            self.manager.skip_failed_instance(copy)
            self.assertInstanceSkipped(copy.name)
            self.manager.fire("page")
            self.assertInstanceUnstarted("t_every#0")
            self.manager.fire("stop")
            self.assertInstanceAbandoned("t_vetoed#0")

        def test_fails(self) -> None:
            self.manager.fire("go")
            self.assertInstanceFinished("t_bad#0")

    stream = io.StringIO()
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(Case)
    result = unittest.TextTestRunner(stream=stream, verbosity=0).run(suite)
    assert result.testsRun == 2 and not result.errors, stream.getvalue()
    [(case, report)] = result.failures
    assert case.id().endswith("test_fails")
    assert "AssertionError: expected t_bad#0 to be finished, but t_bad#0 is failed" in report
    assert "exception: ValueError" in report


def test_capture_signals_is_part_of_the_toolbox(manager: TriggerManager) -> None:
    manager.update_configuration({"t": {"after": ["a"], "run": "tests.noop"}})
    with capture_signals() as recorded:
        manager.fire("a")
    assert recorded.names == ["pre_fire", "task_scheduled", "post_fire", "task_started",
                              "pre_fire", "task_completed", "post_fire", "pre_fire",
                              "post_fire", "session_finalized"]
    assert [r.kwargs["trigger_name"] for r in recorded.of(signals.post_fire)] == [
        "a", "t", "sessionFinalized"]
    with capture_signals(signals.task_completed) as only:
        manager.fire("a")
    assert only == []
    assert not signals.post_fire.receivers  # disconnected after the block


PLUGIN_TEST = textwrap.dedent("""\
    import pytest
    from triggerhooks import trigger_task
    from triggerhooks.testing import assert_instance_failed, assert_instance_finished

    @trigger_task(name="plugin_test.double")
    def double(context):
        return {"value": context.trigger_kwargs["number"]["value"] * 2}

    @trigger_task(name="plugin_test.fail")
    def fail(context):
        raise KeyError("nothing here")

    WORKFLOW = {"t_double": {"after": ["number"], "run": "plugin_test.double"},
                "t_fail": {"after": ["number"], "run": "plugin_test.fail"}}

    def test_fixtures(triggerhooks_manager, triggerhooks_storage, triggerhooks_signals,
                      triggerhooks_storage_url, manager):
        assert manager == "the project's own fixture"
        assert triggerhooks_storage_url == "memory://"
        assert triggerhooks_manager.storage is triggerhooks_storage
        triggerhooks_manager.update_configuration(WORKFLOW)
        triggerhooks_manager.fire("number", {"value": 21})
        assert_instance_finished(triggerhooks_manager, "t_double#0", {"value": 42})
        assert_instance_failed(triggerhooks_manager, "t_fail#0", KeyError)
        assert "task_failed" in triggerhooks_signals.names

    def test_fresh_session_each_time(triggerhooks_manager):
        assert triggerhooks_manager.storage.tasks == {}

    def test_failing_assertion(triggerhooks_manager):
        triggerhooks_manager.update_configuration(WORKFLOW)
        triggerhooks_manager.fire("number", {"value": 1})
        assert_instance_finished(triggerhooks_manager, "t_fail#0")
    """)


def test_pytest_plugin_is_installed_with_prefixed_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import pytest

        @pytest.fixture
        def manager():
            return "the project's own fixture"
    """)
    pytester.makepyfile(test_plugin=PLUGIN_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: expected t_fail#0 to be finished, but t_fail#0 is failed",
        "*exception: KeyError",
        "*Traceback (most recent call last):",
    ])


def test_the_storage_url_comes_from_the_command_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def test_url(triggerhooks_storage_url, triggerhooks_storage):
            assert triggerhooks_storage_url == "memory://?from=cli"
            assert type(triggerhooks_storage).__name__ == "MemoryStorageBackend"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           "--triggerhooks-storage-url", "memory://?from=cli")
    result.assert_outcomes(passed=1)
