"""A Django database alias as the storage: its connection settings become a
``postgresql://`` URL, and nothing of it but the password's absence is ever shown."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from triggerhooks_django import get_manager, storage_url
from triggerhooks_django.databases import database_url, postgres_storage_installed, url_of

from triggerhooks import open_storage

needs_postgres_storage = pytest.mark.skipif(not postgres_storage_installed(),
                                            reason="core PostgreSQL storage not installed")


def test_the_settings_of_a_database_make_its_url() -> None:
    assert url_of({"USER": "app", "PASSWORD": "pw", "HOST": "db.example", "PORT": "5433",
                   "NAME": "shop"}) == "postgresql://app:pw@db.example:5433/shop"
    assert url_of({"NAME": "shop"}) == "postgresql:///shop"
    assert url_of({"USER": "app", "NAME": "shop", "PORT": 5432}) == "postgresql://app@:5432/shop"


def test_every_part_is_escaped() -> None:
    url = url_of({"USER": "a@b", "PASSWORD": "p@ss:/?#%&= w", "HOST": "db", "NAME": "my db/1"})
    assert url == "postgresql://a%40b:p%40ss%3A%2F%3F%23%25%26%3D%20w@db/my%20db%2F1"


def test_sockets_ipv6_and_libpq_options() -> None:
    assert url_of({"HOST": "/var/run/postgresql", "NAME": "shop"}) == (
        "postgresql:///shop?host=%2Fvar%2Frun%2Fpostgresql")
    assert url_of({"HOST": "::1", "PORT": "5432", "NAME": "shop"}) == "postgresql://[::1]:5432/shop"
    options = {"sslmode": "require", "connect_timeout": 5, "isolation_level": 1,
               "server_side_binding": True, "pool": {"min_size": 2}, "application_name": "shop"}
    assert url_of({"HOST": "db", "NAME": "shop", "OPTIONS": options}, [("extra", "1")]) == (
        "postgresql://db/shop?sslmode=require&connect_timeout=5&application_name=shop&extra=1")


def test_the_default_database_as_connected_now(db: Any) -> None:
    params = connections["default"].settings_dict
    url = database_url("default")
    assert url == f"postgresql://postgres@127.0.0.1:5432/{params['NAME']}"
    assert params["NAME"].startswith("test_")  # the test database, not the project's


def test_an_unknown_alias_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured,
                       match=r"TRIGGERHOOKS\['storage'\] names the database 'nope', which "
                             r"DATABASES does not have \(it has: 'default', 'other'\)"):
        database_url("nope")


def test_a_database_that_is_not_postgresql_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        database_url("other")
    assert str(caught.value) == (
        "TRIGGERHOOKS['storage'] names the database 'other', whose engine "
        "(django.db.backends.sqlite3) is sqlite: only a PostgreSQL database can keep sessions; "
        "give a storage URL instead (redis://..., sqlite:///...)")


@pytest.mark.skipif(postgres_storage_installed(), reason="the core PostgreSQL storage is installed")
def test_without_the_postgresql_storage_the_alias_says_what_to_install(settings: Any) -> None:
    settings.TRIGGERHOOKS = {"storage": {"database": "default"}}
    with pytest.raises(ImproperlyConfigured, match=r"pip install 'triggerhooks\[postgres\]'"):
        storage_url()


def test_a_password_never_shows_in_an_error(settings: Any) -> None:
    settings.TRIGGERHOOKS = {"storage": {"database": "other"}}
    with pytest.raises(ImproperlyConfigured) as caught:
        storage_url()
    assert "postgresql://" not in str(caught.value)


@needs_postgres_storage
def test_sessions_live_in_the_projects_database(settings: Any, transactional_db: Any,
                                                uid: str) -> None:
    settings.TRIGGERHOOKS = {"storage": {"database": "default"}}
    manager = get_manager(uid)
    manager.update_configuration({"t": {"after": ["go"], "run": "testapp.echo"}})
    manager.fire("go", {"n": 1})
    assert manager.storage["t#0"].status == "finished"
    again = get_manager(uid).storage  # another storage object: what is stored, not cached
    assert again["t#0"].metadata["result"] == {"received": {"go": {"n": 1}}}
    assert uid in again.session_uids()
    assert storage_url() == database_url("default")


@needs_postgres_storage
def test_a_password_of_the_database_is_never_shown(transactional_db: Any, uid: str) -> None:
    # A server that is not there: the URL holds the password, and no message may.
    params = dict(connections["default"].settings_dict, PASSWORD="s3cret-pw", PORT="1")
    url = url_of(params, [("connect_timeout", "2")])
    with pytest.raises(Exception) as caught:
        open_storage(url, uid).tasks  # noqa: B018 - reading is what fails
    assert "s3cret-pw" not in str(caught.value)
    assert "s3cret-pw" not in repr(caught.value)
