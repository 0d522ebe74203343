"""Where the default app's settings come from, from the weakest to the strongest: the
plugin's defaults, the configuration module, keyword settings, Celery's variables."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from triggerhooks_celery import create_app, get_app, install
from triggerhooks_celery.apps import CONFIG_ENV, DEFAULT_SETTINGS


@pytest.fixture(autouse=True)
def _restore_app() -> Iterator[None]:
    previous = get_app()
    yield
    install(previous)


NEW_STYLE = ('broker_url = "redis://127.0.0.1:6379/9"\n'
             "worker_prefetch_multiplier = 4\n"
             'task_serializer = "yaml"\n')
OLD_STYLE = ('BROKER_URL = "redis://127.0.0.1:6379/9"\n'
             "CELERYD_PREFETCH_MULTIPLIER = 4\n"
             'CELERY_TASK_SERIALIZER = "yaml"\n')


@pytest.fixture(params=[NEW_STYLE, OLD_STYLE], ids=["new-style", "old-style"])
def config_module(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A configuration module of the test's own, named in ``$TRIGGERHOOKS_CELERY_CONFIG``,
    with Celery's setting names of either style."""
    name = f"celery_settings_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    path.write_text(request.param)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(CONFIG_ENV, name)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    yield path
    sys.modules.pop(name, None)


def test_the_defaults_apply_without_a_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    conf = create_app().conf
    assert conf.broker_url == DEFAULT_SETTINGS["broker_url"]
    assert conf.worker_prefetch_multiplier == 1 and conf.task_serializer == "json"


@pytest.mark.usefixtures("config_module")
def test_the_module_overrides_the_defaults_and_keeps_the_rest() -> None:
    conf = create_app().conf
    assert conf.broker_url == "redis://127.0.0.1:6379/9"
    assert conf.worker_prefetch_multiplier == 4
    assert conf.task_serializer == "yaml"
    assert conf.accept_content == ["json"]  # a default the module does not set


@pytest.mark.usefixtures("config_module")
def test_keyword_settings_override_the_module() -> None:
    conf = create_app(worker_prefetch_multiplier=7, broker_url="redis://127.0.0.1:6379/5").conf
    assert conf.worker_prefetch_multiplier == 7
    assert conf.broker_url == "redis://127.0.0.1:6379/5"


@pytest.mark.usefixtures("config_module")
def test_celery_s_variable_overrides_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/3")
    assert create_app(broker_url="redis://127.0.0.1:6379/5").conf.broker_url == (
        "redis://127.0.0.1:6379/3")
