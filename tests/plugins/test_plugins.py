"""The plugin system in process: the built-ins, ``register``/``registered``, and the errors
a plugin author meets (misspelled hooks, collisions, hooks that raise)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any

import pluggy
import pytest
from click.testing import CliRunner

import triggerhooks
from triggerhooks import (
    DuplicateKeyError,
    InlineTaskRunner,
    MemoryStorageBackend,
    StorageBackend,
    TaskRunner,
    TriggerManager,
    TriggerTask,
    UnknownKeyError,
    trigger_task,
)
from triggerhooks.cli import cli
from triggerhooks.cli.render import format_plugins
from triggerhooks.events import ReceiverModuleError
from triggerhooks.exceptions import InvalidPluginError
from triggerhooks.manager import trigger_managers
from triggerhooks.plugins import (
    BUILTINS,
    PluginInfo,
    get_plugin_manager,
    hookimpl,
    list_plugins,
    receiver_modules_from_plugins,
    register,
    registered,
    unregister,
)
from triggerhooks.registries import Registry
from triggerhooks.runners import task_runners
from triggerhooks.signals import task_completed
from triggerhooks.storages import storage_backends
from triggerhooks.task import TaskContext, trigger_tasks


class CountingStorage(MemoryStorageBackend):
    name = "tests-counting"
    transactions = 0

    def transact(self, plan: Any, compute: Any) -> Any:
        type(self).transactions += 1
        return super().transact(plan, compute)


class RecordingRunner(InlineTaskRunner):
    name = "tests-recording"
    scheduled: list[str] = []

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        self.scheduled.append(instance_name)
        super().schedule(manager, instance_name, countdown)


class RecordingManager(TriggerManager):
    name = "tests-recording"
    default_task_runner_name = "tests-recording"


class Shout(TriggerTask, register=False):  # registered only by the plugin below
    name = "tests.plugins.shout"

    def _run(self, context: TaskContext) -> dict[str, str]:
        return {"text": context.trigger_kwargs["said"]["text"].upper()}


class Plugin:
    """A plugin that uses every registration hook."""

    @hookimpl
    def triggerhooks_register_managers(self, registry: Registry[TriggerManager]) -> None:
        registry.register(RecordingManager)

    @hookimpl
    def triggerhooks_register_storages(self, registry: Registry[StorageBackend]) -> None:
        registry.register(CountingStorage)

    @hookimpl
    def triggerhooks_register_runners(self, registry: Registry[TaskRunner]) -> None:
        registry.register(RecordingRunner)

    @hookimpl
    def triggerhooks_register_tasks(self, registry: Registry[TriggerTask]) -> None:
        registry.register(Shout)


OUR_KEYS: list[tuple[Registry[Any], str]] = [
    (trigger_managers, "tests-recording"), (storage_backends, "tests-counting"),
    (task_runners, "tests-recording"), (trigger_tasks, "tests.plugins.shout")]


def assert_nothing_of_ours_registered() -> None:
    for registry, key in OUR_KEYS:
        assert key not in registry, (registry.kind, key)


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    plugins_before = {name for name, _ in get_plugin_manager().list_name_plugin()}
    yield
    plugins_after = {name for name, _ in get_plugin_manager().list_name_plugin()}
    assert plugins_after == plugins_before, "a test left a plugin registered"
    assert_nothing_of_ours_registered()


def test_the_built_ins_register_through_the_hooks() -> None:
    plugins, failed = list_plugins()
    assert failed == {}
    builtins = plugins[0]
    assert builtins.name == BUILTINS and builtins.module == "triggerhooks.plugins.builtins"
    assert builtins.distribution is None
    assert builtins.hooks == ["triggerhooks_register_managers", "triggerhooks_register_runners",
                              "triggerhooks_register_storages"]
    assert builtins.registered["trigger manager"] == ["default"]
    assert "memory" in builtins.registered["storage backend"]
    assert builtins.registered["task runner"] == ["inline", "threading"]
    assert storage_backends.source_of("memory") == task_runners.source_of("inline") == BUILTINS


def test_hookimpl_is_exported_at_the_top_level() -> None:
    assert triggerhooks.hookimpl is hookimpl
    assert triggerhooks.InvalidPluginError is InvalidPluginError


def test_a_registered_plugin_is_usable_by_key_for_the_block() -> None:
    RecordingRunner.scheduled.clear()
    with registered(Plugin(), name="tests-plugin") as name:
        assert name == "tests-plugin"
        storage = storage_backends.get("tests-counting", "tests-plugins-1")
        manager = trigger_managers.get("tests-recording", storage)
        manager.update_configuration({"shout": {"after": ["said"], "run": "tests.plugins.shout"}})
        manager.fire("said", {"text": "hello"})
        assert storage["shout#0"].metadata["result"] == {"text": "HELLO"}
        assert RecordingRunner.scheduled == ["shout#0"]
        assert CountingStorage.transactions >= 2
        assert trigger_tasks.source_of("tests.plugins.shout") == "tests-plugin"

        info = next(info for info in list_plugins()[0] if info.name == "tests-plugin")
        assert info.module == __name__
        assert info.registered == {
            "trigger manager": ["tests-recording"], "storage backend": ["tests-counting"],
            "task runner": ["tests-recording"], "trigger task": ["tests.plugins.shout"]}
        assert "tests-plugin (registered in process, module tests.plugins.test_plugins)" in format_plugins()
        storage.clear()
    assert_nothing_of_ours_registered()


def test_the_default_name_is_pluggys_canonical_name() -> None:
    plugin = Plugin()
    with registered(plugin) as name:
        assert name == get_plugin_manager().get_canonical_name(plugin)
        assert get_plugin_manager().get_plugin(name) is plugin


def test_unregister_takes_the_plugin_or_its_name() -> None:
    plugin = Plugin()
    register(plugin, "by-name")
    unregister("by-name")
    assert_nothing_of_ours_registered()
    register(plugin)
    unregister(plugin)
    assert_nothing_of_ours_registered()
    with pytest.raises(ValueError, match="is not a registered triggerhooks plugin"):
        unregister("by-name")


def test_a_plugin_can_claim_a_task_that_registered_itself() -> None:
    class Claimed(TriggerTask):
        name = "tests.plugins.claimed"

        def _run(self, context: TaskContext) -> dict[str, Any]:
            return {}

    class Claimer:
        @hookimpl
        def triggerhooks_register_tasks(self, registry: Registry[TriggerTask]) -> None:
            registry.register(Claimed)

    defined_by = f"{__name__}.{Claimed.__qualname__}"
    assert trigger_tasks.source_of(Claimed.name) == defined_by
    with registered(Claimer(), "claimer"):
        assert trigger_tasks.source_of(Claimed.name) == "claimer"
    assert trigger_tasks.source_of(Claimed.name) == defined_by  # as before the plugin
    trigger_tasks.unregister(Claimed.name)


def test_a_trigger_task_function_can_be_registered_by_a_plugin() -> None:
    @trigger_task(name="tests.plugins.function")
    def function_task(context: TaskContext) -> dict[str, Any]:
        return {"ok": True}

    class Tasks:
        @hookimpl
        def triggerhooks_register_tasks(self, registry: Registry[TriggerTask]) -> None:
            registry.register(function_task)

    with registered(Tasks(), "function-tasks"):
        assert trigger_tasks.source_of("tests.plugins.function") == "function-tasks"
    trigger_tasks.unregister("tests.plugins.function")


def test_implementations_may_leave_out_arguments() -> None:
    class NoArguments:
        @hookimpl
        def triggerhooks_register_storages(self) -> None:
            self.called = True

    plugin = NoArguments()
    with registered(plugin):
        assert plugin.called


# -- mistakes a plugin author makes ------------------------------------------------------------


def test_a_misspelled_hook_fails_loudly_naming_the_plugin() -> None:
    class Misspelled:
        @hookimpl
        def triggerhooks_register_storage(self, registry: Any) -> None:
            registry.register(CountingStorage)

    with pytest.raises(InvalidPluginError) as caught:
        register(Misspelled(), "misspelled")
    assert str(caught.value) == ("plugin 'misspelled': unknown hook 'triggerhooks_register_storage' "
                                 "(did you mean 'triggerhooks_register_storages'?)")
    assert isinstance(caught.value, pluggy.PluginValidationError)
    assert not get_plugin_manager().has_plugin("misspelled")


def test_an_unknown_hook_far_from_any_lists_the_known_ones() -> None:
    class Unknown:
        @hookimpl
        def triggerhooks_startup(self) -> None: ...

    with pytest.raises(InvalidPluginError, match=r"unknown hook 'triggerhooks_startup' \(known hooks: "
                                                 r"triggerhooks_receiver_modules, triggerhooks_register_"):
        register(Unknown(), "unknown")


def test_an_optional_unknown_hook_is_allowed() -> None:
    class Optional:
        @hookimpl(optionalhook=True)
        def triggerhooks_from_the_future(self) -> None: ...

    with registered(Optional(), "optional") as name:
        assert get_plugin_manager().has_plugin(name)


def test_a_hook_without_hookimpl_fails_loudly() -> None:
    class Unmarked:
        def triggerhooks_register_storages(self, registry: Any) -> None:
            registry.register(CountingStorage)

    with pytest.raises(InvalidPluginError, match=r"plugin 'unmarked': function "
                                                 r"'triggerhooks_register_storages' is not marked "
                                                 r"with @hookimpl"):
        register(Unmarked(), "unmarked")
    assert_nothing_of_ours_registered()


def test_an_argument_the_spec_lacks_fails_naming_the_plugin() -> None:
    class WrongArgument:
        @hookimpl
        def triggerhooks_register_storages(self, storages: Any) -> None: ...

    with pytest.raises(InvalidPluginError, match=r"(?s)plugin 'wrong-argument': .*'storages'"):
        register(WrongArgument(), "wrong-argument")
    assert not get_plugin_manager().has_plugin("wrong-argument")


def test_a_key_the_built_ins_own_is_refused_and_nothing_stays() -> None:
    class Memory(MemoryStorageBackend):
        name = "memory"

    class Clashing:
        @hookimpl
        def triggerhooks_register_runners(self, registry: Registry[TaskRunner]) -> None:
            registry.register(RecordingRunner)  # runs first, then is undone

        @hookimpl
        def triggerhooks_register_storages(self, registry: Registry[StorageBackend]) -> None:
            registry.register(Memory)

    with pytest.raises(DuplicateKeyError) as caught:
        register(Clashing(), "clashing")
    assert str(caught.value) == (
        "storage backend 'memory' is registered twice: by the built-ins (triggerhooks.builtins) "
        "(triggerhooks.storages.memory.MemoryStorageBackend) and by plugin 'clashing' "
        f"({__name__}.{Memory.__qualname__}); remove one of them or register one under another key")
    assert storage_backends.get_class("memory") is MemoryStorageBackend
    assert not get_plugin_manager().has_plugin("clashing")


def test_two_plugins_with_one_key_name_both() -> None:
    class Other(MemoryStorageBackend):
        name = "tests-counting"

    class OtherPlugin:
        @hookimpl
        def triggerhooks_register_storages(self, registry: Registry[StorageBackend]) -> None:
            registry.register(Other)

    with registered(Plugin(), "first"):
        with pytest.raises(DuplicateKeyError, match=r"storage backend 'tests-counting' is registered "
                                                    r"twice: by plugin 'first' \(.*CountingStorage\) "
                                                    r"and by plugin 'second' \(.*Other\)"):
            register(OtherPlugin(), "second")
        assert storage_backends.get_class("tests-counting") is CountingStorage


def test_a_hook_that_raises_leaves_nothing_behind() -> None:
    class Raising:
        @hookimpl
        def triggerhooks_register_storages(self, registry: Registry[StorageBackend]) -> None:
            registry.register(CountingStorage)
            raise ImportError("optional dependency missing")

    with pytest.raises(ImportError, match="optional dependency missing"):
        register(Raising(), "raising")
    assert_nothing_of_ours_registered()
    assert not get_plugin_manager().has_plugin("raising")


# -- receiver modules -----------------------------------------------------------------------------


class Receivers:
    def __init__(self, value: Any) -> None:
        self.value = value

    @hookimpl
    def triggerhooks_receiver_modules(self) -> Any:
        return self.value


@pytest.fixture
def receivers_module() -> Iterator[str]:
    name = "tests.plugins.receivers"
    yield name
    module = sys.modules.get(name)
    if module is not None:
        task_completed.disconnect(module.record)


def test_receiver_modules_are_imported_when_the_plugin_is_registered(
        receivers_module: str, manager: TriggerManager) -> None:
    with registered(Receivers([receivers_module]), "receivers"):
        assert receivers_module in receiver_modules_from_plugins()
        module = importlib.import_module(receivers_module)
        manager.update_configuration({"announce": {"after": ["go"], "run": module.Announce.name}})
        manager.fire("go")
        assert module.announced == ["announce#0"]
        info = next(info for info in list_plugins()[0] if info.name == "receivers")
        assert info.receiver_modules == [receivers_module]
    assert receivers_module not in receiver_modules_from_plugins()


def test_a_receiver_module_that_cannot_be_imported_undoes_the_registration() -> None:
    class Both(Plugin, Receivers):
        pass

    with pytest.raises(ReceiverModuleError, match=r"cannot import receiver module 'tests\.nowhere'"):
        register(Both(["tests.nowhere"]), "both")
    assert_nothing_of_ours_registered()
    assert not get_plugin_manager().has_plugin("both")


@pytest.mark.parametrize("value", ["tests.plugins.receivers", [1], 3, {"a": 1}])
def test_receiver_modules_must_be_a_list_of_names(value: Any) -> None:
    with pytest.raises(InvalidPluginError, match=r"triggerhooks_receiver_modules of plugin 'bad' must "
                                                 r"return a list of module names, not "):
        register(Receivers(value), "bad")
    assert not get_plugin_manager().has_plugin("bad")


def test_no_receiver_modules_is_fine() -> None:
    class Nothing:
        @hookimpl
        def triggerhooks_receiver_modules(self) -> None:
            return None

    with registered(Nothing(), "nothing"):
        info = next(info for info in list_plugins()[0] if info.name == "nothing")
        assert info.receiver_modules == [] and info.registered == {}
        assert ("nothing (registered in process, module tests.plugins.test_plugins)\n"
                "    (nothing registered)") in format_plugins()


# -- listing -------------------------------------------------------------------------------------


def test_format_plugins() -> None:
    plugins = [
        PluginInfo(BUILTINS, "triggerhooks.builtins",
                   registered={"trigger manager": ["default"], "task runner": ["inline"]}),
        PluginInfo("example", "triggerhooks_example.plugin", "triggerhooks-example", "0.1.0",
                   "example = triggerhooks_example.plugin",
                   registered={"storage backend": ["example-namespaced"]},
                   receiver_modules=["triggerhooks_example.receivers"]),
    ]
    failed = {"broken": "triggerhooks-broken 0.1.0 (entry point broken = x): ImportError: no"}
    assert format_plugins(plugins, failed) == (
        "triggerhooks.builtins (built in)\n"
        "    trigger managers: default\n"
        "    task runners: inline\n"
        "example (triggerhooks-example 0.1.0, entry point example = triggerhooks_example.plugin)\n"
        "    storage backends: example-namespaced\n"
        "    receiver modules: triggerhooks_example.receivers\n"
        "failed to load:\n"
        "    broken: triggerhooks-broken 0.1.0 (entry point broken = x): ImportError: no")


def test_triggerhooks_plugins_command() -> None:
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0
    assert result.stdout == format_plugins() + "\n"
    assert result.stdout.startswith("triggerhooks.builtins (built in)\n    trigger managers: default\n")


def test_a_lookup_that_misses_does_not_blame_plugins_when_none_failed() -> None:
    with pytest.raises(UnknownKeyError) as caught:
        task_runners.get_class("no-such-runner")
    known = ", ".join(map(repr, sorted(map(str, task_runners.keys()))))
    assert str(caught.value) == f"unknown task runner 'no-such-runner'; known: {known}"
