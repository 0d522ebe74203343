"""``TRIGGERHOOKS``: what it may hold, and an error naming the key for anything else."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from triggerhooks_django import get_manager, get_settings, storage_url
from triggerhooks_django.apps import check_names
from triggerhooks_django.settings import DEFAULT_AUTODISCOVER, TriggerhooksSettings, parse_settings

from triggerhooks import (
    InlineTaskRunner,
    MemoryStorageBackend,
    TriggerManager,
    task_runners,
    trigger_managers,
)
from triggerhooks.ext import registered_class


def test_nothing_set_means_the_cores_defaults() -> None:
    assert parse_settings(None) == TriggerhooksSettings()
    assert parse_settings({}) == TriggerhooksSettings()
    assert TriggerhooksSettings().autodiscover == DEFAULT_AUTODISCOVER == ("triggers", "receivers")


def test_every_setting() -> None:
    config = parse_settings({
        "storage": {"database": "default", "options": {"sslmode": "require", "connect_timeout": 5}},
        "manager": "default", "task_runner": "threading",
        "receiver_modules": ["app.receivers", "app.more"], "autodiscover": ["events"],
        "finalize_log_level": "error",
    })
    assert config == TriggerhooksSettings(
        storage=None, database="default",
        database_options=(("sslmode", "require"), ("connect_timeout", "5")),
        manager="default", task_runner="threading", receiver_modules=("app.receivers", "app.more"),
        autodiscover=("events",), finalize_log_level=logging.ERROR)
    assert parse_settings({"storage": "redis://h:6379/0"}).storage == "redis://h:6379/0"
    assert parse_settings({"finalize_log_level": logging.CRITICAL}).finalize_log_level == 50
    assert parse_settings({"autodiscover": []}).autodiscover == ()


@pytest.mark.parametrize(("value", "message"), [
    ([], "TRIGGERHOOKS must be a dict, not list"),
    ({"receivers_modules": ["a"]},
     "TRIGGERHOOKS['receivers_modules'] is not a setting (did you mean 'receiver_modules'?)"),
    ({"storage": "default"}, "TRIGGERHOOKS['storage'] must be a storage URL"),
    ({"storage": "default"}, '{"database": "<alias>"}'),
    ({"storage": {"alias": "default"}}, "unknown keys: alias"),
    ({"storage": {}}, '"database" is missing'),
    ({"storage": {"database": ""}}, "TRIGGERHOOKS['storage'] must be a non-empty string"),
    ({"storage": {"database": "default", "options": {"sslmode": ["x"]}}},
     "TRIGGERHOOKS['storage'][\"options\"] must map option names to strings or numbers"),
    ({"storage": 5}, "TRIGGERHOOKS['storage'] must be a URL string or"),
    ({"manager": ""}, "TRIGGERHOOKS['manager'] must be a non-empty string"),
    ({"task_runner": 3}, "TRIGGERHOOKS['task_runner'] must be a non-empty string, not 3"),
    ({"receiver_modules": "app.receivers"},
     "TRIGGERHOOKS['receiver_modules'] must be a list of module names, such as"),
    ({"receiver_modules": ["app receivers"]}, "holds 'app receivers', which is not a dotted"),
    ({"autodiscover": [None]}, "TRIGGERHOOKS['autodiscover'] holds None"),
    ({"finalize_log_level": "INFO"}, "TRIGGERHOOKS['finalize_log_level'] must be None, a level"),
    ({"finalize_log_level": logging.INFO}, "not 20"),
    ({"finalize_log_level": True}, "not True"),
])
def test_a_bad_setting_is_named(value: Any, message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        parse_settings(value)
    assert message in str(caught.value)


def test_the_project_settings_are_read_each_time(settings: Any) -> None:
    assert get_settings().storage == settings.STORAGE_URL
    settings.TRIGGERHOOKS = {"storage": "memory://", "task_runner": "threading"}
    assert get_settings().storage == "memory://"
    assert storage_url() == "memory://"


def test_unconfigured_projects_use_the_cores_default(settings: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    del settings.TRIGGERHOOKS
    monkeypatch.setenv("TRIGGERHOOKS_STORAGE_URL", "memory://")
    assert get_settings() == TriggerhooksSettings()
    assert storage_url() is None
    manager = get_manager("django-unconfigured")
    assert isinstance(manager.storage, MemoryStorageBackend)
    assert manager.task_runner_name == "inline"


def test_the_manager_is_made_as_the_settings_say(settings: Any) -> None:
    class AppManager(TriggerManager):
        pass

    with registered_class(trigger_managers, "django-test-app", AppManager):
        settings.TRIGGERHOOKS = {"storage": "memory://", "manager": "django-test-app",
                                 "task_runner": "threading", "finalize_log_level": "WARNING"}
        manager = get_manager("django-made")
        assert type(manager) is AppManager
        assert manager.task_runner_name == "threading"
        assert manager.finalize_log_level == logging.WARNING
        assert manager.storage.uid == "django-made"


def test_names_that_are_not_registered_are_refused() -> None:
    check_names(TriggerhooksSettings(task_runner="threading"))
    with pytest.raises(ImproperlyConfigured,
                       match=r"TRIGGERHOOKS\['manager'\] is 'nope', which is not a registered "
                             r"trigger manager \(known: .*default"):
        check_names(TriggerhooksSettings(manager="nope"))
    with pytest.raises(ImproperlyConfigured,
                       match=r"TRIGGERHOOKS\['task_runner'\] is 'celry', which is not a "
                             r"registered task runner \(known: .*inline.*threading"):
        check_names(TriggerhooksSettings(task_runner="celry"))


def test_a_runner_registered_by_an_app_is_known(settings: Any) -> None:
    class Recording(InlineTaskRunner):
        ran: ClassVar[list[str]] = []

    with registered_class(task_runners, "django-test-runner", Recording):
        check_names(TriggerhooksSettings(task_runner="django-test-runner"))


@pytest.mark.parametrize(("value", "message"), [
    ({"task_runner": "nope"}, "TRIGGERHOOKS['task_runner'] is 'nope'"),
    ({"storage": "nosuch://x"}, "TRIGGERHOOKS['storage'] is a nosuch:// URL, which no installed "
                                "storage opens (known: memory, "),
    ({"receiver_modules": ["testproject.no_such_module"]},
     "TRIGGERHOOKS['receiver_modules'] names 'testproject.no_such_module', which cannot be "
     "imported: ModuleNotFoundError"),
    ({"storage": {"database": "nope"}}, "names the database 'nope', which DATABASES does not have"),
])
def test_the_app_refuses_to_start_with_a_bad_setting(settings: Any, value: dict[str, Any],
                                                      message: str) -> None:
    settings.TRIGGERHOOKS = value
    config = apps.get_app_config("triggerhooks_django")
    with pytest.raises(ImproperlyConfigured) as caught:
        config.ready()
    assert message in str(caught.value)
