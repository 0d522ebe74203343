"""Plugins installed for real (``pip install --target``), used from fresh subprocesses.

Each package is built and installed once per test session into its own
temporary directory; a test puts the directories it wants on ``PYTHONPATH``
of a fresh interpreter, so the test venv itself never changes.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT

SOURCES = {
    "example": ROOT / "plugins" / "triggerhooks-example",
    "broken": ROOT / "tests" / "plugins" / "packages" / "triggerhooks-broken",
    "clash": ROOT / "tests" / "plugins" / "packages" / "triggerhooks-clash",
    "probe": ROOT / "tests" / "plugins" / "packages" / "triggerhooks-probe",
}

Install = Callable[[str], Path]

pytestmark = pytest.mark.slow


def pip_install(source: Path, target: Path) -> Path:
    """A real, offline ``pip install`` of ``source`` into ``target``, built from a copy
    (so the source tree gets no build/ or egg-info)."""
    build_dir = target.with_name(target.name + "-src")
    shutil.copytree(source, build_dir, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
         str(build_dir)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"pip install {source.name} failed:\n{done.stdout}{done.stderr}"
    return target


@pytest.fixture(scope="session")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """``install("example")``: the directory where that package is installed (once per session)."""
    installed: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in installed:
            base = tmp_path_factory.mktemp(f"site-{name}")
            installed[name] = pip_install(SOURCES[name], base / "site")
        return installed[name]

    return get


def run(code: str | list[str], *paths: Path, cwd: Path | None = None,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run Python code (or ``-m`` arguments) in a fresh interpreter with ``paths`` importable."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TRIGGERHOOKS_", "PYTHONWARNINGS"))}
    env.update(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join(str(path) for path in paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    args = code if isinstance(code, list) else ["-c", textwrap.dedent(code)]
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=120, check=False)


def run_json(code: str, *paths: Path) -> dict[str, object]:
    done = run(code, *paths)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


@dataclass(frozen=True)
class Ambient:
    """The plugins of the test environment itself (a user may have some installed):
    what a fresh interpreter loads before a test adds its own packages."""

    plugins: list[str]
    keys: dict[str, list[str]]
    blocks: dict[str, list[str]]

    def ours(self, names: list[str], *installed: str) -> list[str]:
        """``names`` without the plugins that are only ambient, in their order."""
        return [name for name in names if name in installed or name not in self.plugins]

    def with_keys(self, kind: str, *added: str) -> list[str]:
        """The sorted keys of one registry once ``added`` are registered too."""
        return sorted({*self.keys[kind], *added})


def listing_blocks(text: str) -> dict[str, list[str]]:
    """``python -m triggerhooks plugins`` output: plugin heading -> its indented lines."""
    blocks: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in text.splitlines():
        if not line.startswith(" "):
            blocks[line] = lines = []
        else:
            lines.append(line)
    return blocks


@pytest.fixture(scope="session")
def ambient() -> Ambient:
    found = run_json("""
        import json
        from triggerhooks import storage_backends, task_runners, trigger_managers, trigger_tasks
        from triggerhooks.plugins import list_plugins
        plugins, failed = list_plugins()
        registries = [trigger_managers, storage_backends, task_runners, trigger_tasks]
        print(json.dumps({"plugins": [info.name for info in plugins], "failed": failed,
                          "keys": {r.kind: sorted(map(str, r.keys())) for r in registries}}))
    """)
    assert found["failed"] == {}, "a plugin installed in the test environment fails to load"
    plugins, keys = found["plugins"], found["keys"]
    assert isinstance(plugins, list) and plugins[0] == "triggerhooks.builtins"
    assert isinstance(keys, dict)
    listing = run(["-m", "triggerhooks", "plugins"])
    assert listing.returncode == 0, listing.stderr
    return Ambient(plugins, keys, listing_blocks(listing.stdout))


@pytest.fixture
def removable_example(tmp_path: Path) -> Iterator[Path]:
    yield pip_install(SOURCES["example"], tmp_path / "site")


USE_THE_EXAMPLE = """
    import json
    from triggerhooks.manager import trigger_managers
    from triggerhooks.plugins import list_plugins
    from triggerhooks.storages import storage_backends

    storage = storage_backends.get("example-namespaced", "visit-1", namespace="front-desk")
    manager = trigger_managers.get("example-queued", storage)
    manager.update_configuration({
        "greet": {"after": ["guestArrived"], "run": "triggerhooks_example.greet"},
        "greetAgain": {"after": ["greet"], "using": "inline", "run": "triggerhooks_example.greet",
                       "withParams": {"host": {"name": "Grace"}}},
    })
    manager.fire("guestArrived", {"name": "Ada"})
    queued = storage["greet#0"].status

    from triggerhooks_example import QueueTaskRunner
    from triggerhooks_example.receivers import recent_greetings
    ran = QueueTaskRunner.run_pending()

    plugins, failed = list_plugins()
    print(json.dumps({
        "storage": type(storage).__name__, "uid": storage.uid, "manager": type(manager).__name__,
        "queued": queued, "ran": ran,
        "results": {name: [i.status, i.metadata.get("result")] for name, i in storage.instances.items()},
        "receiver": list(recent_greetings),
        "plugins": {info.name: info.registered for info in plugins}, "failed": failed,
    }))
"""


def test_an_installed_plugin_is_usable_by_key_until_removed(removable_example: Path,
                                                            ambient: Ambient) -> None:
    if "example" in ambient.plugins:
        pytest.skip("the example plugin is installed in the test environment itself, so "
                    "removing the test's copy changes nothing")
    result = run_json(USE_THE_EXAMPLE, removable_example)
    assert result["storage"] == "NamespacedMemoryStorage"
    assert result["uid"] == "front-desk/visit-1"
    assert result["manager"] == "QueuedTriggerManager"
    assert result["queued"] == "scheduled"  # the plugin's runner held it
    assert result["ran"] == 1
    assert result["results"] == {
        "greet#0": ["finished", {"greeting": "Hello, Ada!"}],
        "greetAgain#0": ["finished", {"greeting": "Hello, Grace!"}],  # cascade, inline runner
    }
    assert result["receiver"] == ["Hello, Ada!", "Hello, Grace!"]  # receivers from the plugin
    assert result["failed"] == {}
    plugins = result["plugins"]
    assert isinstance(plugins, dict) and next(iter(plugins)) == "triggerhooks.builtins"
    assert ambient.ours(list(plugins), "example") == ["example"]
    assert set(plugins) == {*ambient.plugins, "example"}
    assert "memory" in plugins["triggerhooks.builtins"]["storage backend"]
    assert plugins["example"] == {
        "trigger manager": ["example-queued"], "storage backend": ["example-namespaced"],
        "task runner": ["example-queue"], "trigger task": ["triggerhooks_example.greet"]}

    shutil.rmtree(removable_example)
    gone = run("""
        from importlib.metadata import PackageNotFoundError, distribution
        from triggerhooks import UnknownKeyError
        from triggerhooks.plugins import list_plugins
        from triggerhooks.storages import storage_backends
        try:
            distribution("triggerhooks-example")
        except PackageNotFoundError:
            print("not installed")
        print([info.name for info in list_plugins()[0]])
        try:
            storage_backends.get("example-namespaced", "visit-1")
        except UnknownKeyError as exc:
            print(exc)
    """, removable_example)
    assert gone.returncode == 0, gone.stderr
    installed, plugin_names, missing = gone.stdout.splitlines()
    assert installed == "not installed"
    assert plugin_names == repr(ambient.plugins)
    assert missing.startswith("unknown storage backend 'example-namespaced'; known: ")
    assert "'memory'" in missing and "example-" not in missing.partition("known:")[2]


def test_plugins_are_loaded_on_first_use_not_on_import(install: Install) -> None:
    result = run_json("""
        import json, sys
        import triggerhooks
        from triggerhooks.manager import trigger_managers
        loaded = lambda: sorted(m for m in sys.modules if m.startswith("triggerhooks_example"))
        on_import = loaded()
        trigger_managers.get("default", triggerhooks.MemoryStorageBackend("lazy"))
        print(json.dumps({"import": on_import, "manager": loaded()}))
    """, install("example"))
    assert result == {"import": [], "manager": [
        "triggerhooks_example", "triggerhooks_example.events", "triggerhooks_example.manager",
        "triggerhooks_example.plugin",
        "triggerhooks_example.receivers", "triggerhooks_example.runner",
        "triggerhooks_example.storage", "triggerhooks_example.tasks"]}


def test_python_m_triggerhooks_plugins_lists_what_each_plugin_registered(
        install: Install, ambient: Ambient) -> None:
    done = run(["-m", "triggerhooks", "plugins"], install("example"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("triggerhooks.builtins (built in)\n    trigger managers: default\n")
    assert done.stdout.endswith("\n")
    blocks = listing_blocks(done.stdout)
    heading = ("example (triggerhooks-example 0.1.0, entry point example = "
               "triggerhooks_example.plugin)")
    assert blocks.pop(heading) == [
        "    trigger managers: example-queued",
        "    storage backends: example-namespaced",
        "    task runners: example-queue",
        "    trigger tasks: triggerhooks_example.greet",
        "    receiver modules: triggerhooks_example.receivers",
    ]
    # the other plugins are listed as they are without the example
    assert blocks == {key: lines for key, lines in ambient.blocks.items() if key != heading}


def test_triggerhooks_events_lists_the_event_an_installed_plugin_declares(
        install: Install) -> None:
    done = run(["-m", "triggerhooks", "events", "--json", "triggerhooks_example.*"],
               install("example"))
    assert done.returncode == 0, done.stderr
    [event] = json.loads(done.stdout)["events"]
    assert event["name"] == "triggerhooks_example.greeted"
    assert event["source"] == "plugin example"
    assert event["declared_in"] == "triggerhooks_example.events"
    assert event["arguments"] == [{"name": "greeting", "type": None,
                                   "description": "what the guest was told", "required": True}]


FAILED_NAMES = ["broken-hook", "broken-import", "broken-registration"]


def test_failing_plugins_are_reported_and_the_others_still_load(install: Install,
                                                                 ambient: Ambient) -> None:
    done = run("""
        import json, warnings
        from triggerhooks import UnknownKeyError
        from triggerhooks.exceptions import PluginLoadWarning
        from triggerhooks.plugins import failed_plugins
        from triggerhooks.runners import task_runners
        from triggerhooks.storages import storage_backends

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            example = storage_backends.get_class("example-namespaced").__name__
        try:
            storage_backends.get_class("misspelled")
        except UnknownKeyError as exc:
            unknown = str(exc)
        print(json.dumps({
            "example": example, "failed": failed_plugins(), "unknown": unknown,
            "runners": sorted(task_runners.keys()),
            "warnings": [str(w.message) for w in caught if w.category is PluginLoadWarning],
            "warned_at": sorted({w.filename for w in caught}),
        }))
    """, install("example"), install("broken"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["example"] == "NamespacedMemoryStorage"  # the others still load
    failed = result["failed"]
    assert sorted(failed) == FAILED_NAMES
    for name, why in failed.items():
        assert why.startswith(f"triggerhooks-broken 0.1.0 (entry point {name} = triggerhooks_broken.")
    assert failed["broken-import"].endswith(
        "RuntimeError: triggerhooks-broken fails on import on purpose")
    assert ("unknown hook 'triggerhooks_register_storage' (did you mean "
            "'triggerhooks_register_storages'?)") in failed["broken-hook"]
    assert failed["broken-registration"].endswith(
        "ImportError: the optional dependency 'nothere' is not installed")
    # what the failing hook registered before raising was undone
    assert "half-registered" not in result["runners"] and "example-queue" in result["runners"]
    # the lookup that misses says which plugins failed
    storages = ambient.with_keys("storage backend", "example-namespaced")
    assert result["unknown"].startswith(
        f"unknown storage backend 'misspelled'; known: {', '.join(map(repr, storages))} (")
    assert ("(plugins that failed to load: broken-hook: triggerhooks-broken 0.1.0 (entry point "
            "broken-hook = triggerhooks_broken.misspelled): InvalidPluginError: ") in result["unknown"]
    # one report for each: a warning (recorded here), and nothing printed besides
    warned = result["warnings"]
    assert len(warned) == 3
    assert all(any(f"plugin {name!r} failed to load" in w for w in warned) for name in FAILED_NAMES)
    assert result["warned_at"] == ["<string>"]  # attributed to the caller, not to triggerhooks
    assert done.stderr == ""

    # unrecorded, Python prints each warning once, without a traceback; where the plugin
    # broke is logged at DEBUG, for an application that shows DEBUG
    for setup, tracebacks in (("", 0), ("import logging; logging.basicConfig()", 0),
                              ("import logging; logging.basicConfig(level=logging.DEBUG)", 3)):
        shown = run(f"{setup}\nfrom triggerhooks import storage_backends\n"
                    "storage_backends.get_class('memory')", install("broken"))
        assert shown.returncode == 0, shown.stderr
        for name in FAILED_NAMES:
            assert shown.stderr.count(f"triggerhooks plugin {name!r} failed to load and is "
                                      "ignored") == 1, (setup, shown.stderr)
        assert shown.stderr.count("Traceback (most recent call last)") == tracebacks, setup

    # the command line: one line each; the tracebacks with --traceback
    for options, tracebacks in (((), 0), (("--traceback",), 3)):
        shown = run(["-m", "triggerhooks", *options, "--storage", "memory://", "show", "s"],
                    install("broken"))
        assert shown.returncode == 1 and shown.stderr.strip().endswith("error: no session 's' in "
                                                                       "memory://")
        for name in FAILED_NAMES:
            assert shown.stderr.count(f"warning: triggerhooks plugin {name!r} failed to load and "
                                      "is ignored: triggerhooks-broken 0.1.0") == 1, shown.stderr
        assert shown.stderr.count("Traceback (most recent call last)") == tracebacks, options

    listing = run(["-m", "triggerhooks", "plugins"], install("example"), install("broken"))
    assert listing.returncode == 1
    assert "\nexample (triggerhooks-example 0.1.0" in listing.stdout
    failures = listing.stdout.split("failed to load:\n")[1].splitlines()
    assert [line.split(":")[0].strip() for line in failures] == FAILED_NAMES

    strict = run("""
        import warnings
        from triggerhooks.exceptions import PluginLoadWarning
        from triggerhooks.storages import storage_backends
        warnings.simplefilter("error", PluginLoadWarning)
        storage_backends.get_class("memory")
    """, install("broken"))
    assert strict.returncode == 1
    assert "triggerhooks.exceptions.PluginLoadWarning: triggerhooks plugin 'broken-" in strict.stderr


def test_two_plugins_registering_one_key_is_an_error_naming_both(install: Install) -> None:
    done = run("""
        from triggerhooks import DuplicateKeyError
        from triggerhooks.runners import task_runners
        from triggerhooks.storages import storage_backends
        for lookup in (lambda: storage_backends.get_class("memory"),
                       lambda: task_runners.get_class("inline"), lambda: "clash-only" in storage_backends):
            try:
                lookup()
            except DuplicateKeyError as exc:
                print(exc)
    """, install("example"), install("clash"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and len(set(lines)) == 1  # every lookup refuses, the same way
    message = lines[0]
    assert message.startswith("task runner 'example-queue' is registered twice: by plugin ")
    assert ("plugin 'example' from triggerhooks-example 0.1.0 "
            "(triggerhooks_example.runner.QueueTaskRunner)") in message
    assert "plugin 'clash' from triggerhooks-clash 0.1.0 (triggerhooks_clash.ClashRunner)" in message

    listing = run(["-m", "triggerhooks", "plugins"], install("example"), install("clash"))
    assert listing.returncode == 1
    assert listing.stdout == ""
    assert listing.stderr.strip() == f"error: {message}"


def test_concurrent_first_use_loads_the_plugins_once(install: Install, ambient: Ambient) -> None:
    result = run_json("""
        import json, sys, threading
        import triggerhooks_probe as probe
        from triggerhooks.testing import wait_for
        from triggerhooks.runners import task_runners

        probe.hold = True
        seen = {}

        def look_up(index):
            seen[index] = (task_runners.get_class("probe").__name__, sorted(task_runners.keys()))

        first = threading.Thread(target=look_up, args=(0,))
        first.start()
        assert probe.entered.wait(30)
        others = [threading.Thread(target=look_up, args=(i,)) for i in range(1, 8)]
        for thread in others:
            thread.start()

        def waiting_for_the_load(thread):
            frame = sys._current_frames().get(thread.ident)
            return frame is not None and frame.f_code.co_name == "load_registrations"

        # every other thread is blocked on the lock while the first one loads
        wait_for(lambda: all(waiting_for_the_load(t) for t in others), timeout=30)
        probe.release.set()
        for thread in [first, *others]:
            thread.join(30)
        print(json.dumps({"calls": probe.calls, "seen": sorted(set(map(str, seen.values()))),
                          "threads": len(seen)}))
    """, install("probe"))
    assert result == {
        "calls": 1,
        "seen": [str(("ProbeRunner", ambient.with_keys("task runner", "probe")))],
        "threads": 8,
    }


def test_a_registry_used_while_plugins_load_still_gets_every_plugin(
        install: Install, ambient: Ambient) -> None:
    # The probe's module looks up a runner when imported, before the example is loaded.
    done = run("""
        from triggerhooks.plugins import list_plugins
        from triggerhooks.runners import task_runners
        keys = sorted(task_runners.keys())  # loads the probe, then the example
        import triggerhooks_probe
        print(triggerhooks_probe.looked_up_on_import, keys)
        print([info.name for info in list_plugins()[0]])
    """, install("probe"), install("example"), extra_env={"PROBE_LOOKUP_ON_IMPORT": "1"})
    assert done.returncode == 0, done.stderr
    looked_up, plugins = done.stdout.splitlines()
    runners = ambient.with_keys("task runner", "example-queue", "probe")
    assert looked_up == f"InlineTaskRunner {runners}"
    names = ast.literal_eval(plugins)
    assert names[0] == "triggerhooks.builtins"
    assert ambient.ours(names, "probe", "example") == ["probe", "example"]
    assert set(names) == {*ambient.plugins, "probe", "example"}


def test_the_example_plugins_own_tests_pass_against_the_installed_package(install: Install) -> None:
    done = run(["-m", "pytest", "-q"], install("example"), cwd=SOURCES["example"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout.splitlines()[-1]
    assert "failed" not in done.stdout.splitlines()[-1]
