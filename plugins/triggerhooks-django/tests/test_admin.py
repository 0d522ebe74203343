"""The admin of sessions: who may look, who may replay or skip, and that nothing a user
named (a uid, a task, a trigger, kwargs) reaches the page unescaped."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from testapp.triggers import FIXED
from triggerhooks_django import get_manager
from triggerhooks_django.views import session_url

from triggerhooks import MemoryStorageBackend, TriggerManager, storage_backends
from triggerhooks.ext import registered_class

pytestmark = pytest.mark.django_db

LIST = "/admin/triggerhooks_django/session/"


def user(django_user_model: Any, name: str, *permissions: str, staff: bool = True) -> Client:
    """A client logged in as a new user with these permissions (codenames of the app)."""
    account = django_user_model.objects.create_user(name, password="x", is_staff=staff)
    account.user_permissions.set(Permission.objects.filter(
        content_type__app_label="triggerhooks_django", codename__in=permissions))
    client = Client()
    client.force_login(account)
    return client


@pytest.fixture
def viewer(django_user_model: Any) -> Client:
    return user(django_user_model, "viewer", "view_session")


@pytest.fixture
def failed(manager: TriggerManager) -> TriggerManager:
    """A session whose ``t#0`` failed; ``next`` waits for it."""
    manager.update_configuration({
        "t": {"after": ["go"], "run": "testapp.flaky"},
        "next": {"after": ["t"], "run": "testapp.echo"},
    })
    manager.fire("go", {"page": 1})
    assert manager.storage["t#0"].status == "failed"
    return manager


def html(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return str(response.content.decode())


def test_the_permissions_exist() -> None:
    found = set(Permission.objects.filter(content_type__app_label="triggerhooks_django")
                .values_list("codename", flat=True))
    assert found == {"view_session", "replay_instance", "skip_instance"}


def test_the_admin_index_links_the_sessions(admin_client: Client) -> None:
    assert f'href="{LIST}"' in html(admin_client.get("/admin/"))
    assert reverse("admin:triggerhooks_django_session_changelist") == LIST


def test_the_list_shows_the_sessions_of_the_storage(admin_client: Client, failed: TriggerManager,
                                                    uid: str, settings: Any) -> None:
    page = html(admin_client.get(LIST))
    assert uid in page and settings.STORAGE_URL in page
    assert f'href="{session_url(uid)}"' in page
    assert uid in html(admin_client.get(LIST, {"q": uid[-6:].upper()}))
    assert uid not in html(admin_client.get(LIST, {"q": "no-such-session"}))
    response = admin_client.get(LIST, {"open": uid})
    assert response.status_code == 302 and response["Location"] == session_url(uid)


def test_the_session_page(admin_client: Client, failed: TriggerManager, uid: str) -> None:
    page = html(admin_client.get(session_url(uid)))
    assert f"Session {uid}" in page
    assert re.search(r"<td>t#0</td>\s*<td>failed</td>", page)
    assert "<code>RuntimeError</code>" in page
    assert '<img src="data:image/svg+xml;base64,' in page
    assert 'value="replay"' in page and 'value="skip"' in page
    assert "<td>go</td>" in page and "&quot;page&quot;: 1" in page


def test_without_graphviz_the_picture_is_its_dot_text(admin_client: Client, failed: TriggerManager,
                                                      uid: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    page = html(admin_client.get(session_url(uid)))
    assert "data:image/svg" not in page
    assert "Graphviz &#x27;dot&#x27; was not found" in page
    assert '<pre class="triggerhooks-dot">digraph workflow {' in page


def test_an_unknown_session_is_not_found(admin_client: Client, uid: str) -> None:
    assert admin_client.get(session_url(uid)).status_code == 404
    response = admin_client.get(reverse("admin:triggerhooks_django_session_view"))
    assert response.status_code == 302 and response["Location"] == LIST


def test_replay_from_the_admin(admin_client: Client, failed: TriggerManager, uid: str) -> None:
    FIXED.add(uid)
    response = admin_client.post(session_url(uid), {"uid": uid, "instance": "t#0",
                                                     "action": "replay"}, follow=True)
    assert response.redirect_chain == [(session_url(uid), 302)]
    assert "Replayed t#0 as t#1 (finished)." in html(response)
    storage = get_manager(uid).storage
    assert [storage["t#0"].status, storage["t#1"].status] == ["replayed", "finished"]
    assert storage["t#1"].metadata["parent"] == "t#0"
    assert storage["next#0"].status == "finished"


def test_skip_from_the_admin(admin_client: Client, failed: TriggerManager, uid: str) -> None:
    response = admin_client.post(session_url(uid), {"uid": uid, "instance": "t#0",
                                                     "action": "skip", "cascade": "on"},
                                 follow=True)
    assert "Skipped t#0 and fired its cascade." in html(response)
    storage = get_manager(uid).storage
    assert storage["t#0"].status == "skipped" and storage["next#0"].status == "finished"


def test_an_action_that_is_not_possible_says_why(admin_client: Client, failed: TriggerManager,
                                                 uid: str) -> None:
    response = admin_client.post(session_url(uid), {"uid": uid, "instance": "t#7",
                                                     "action": "replay"}, follow=True)
    assert "Could not replay t#7" in html(response)
    response = admin_client.post(session_url(uid), {"uid": uid, "instance": "t#0",
                                                     "action": "delete"})
    assert response.status_code == 400


def test_anonymous_and_non_staff_users_are_sent_to_the_login(client: Client, failed: TriggerManager,
                                                             uid: str,
                                                             django_user_model: Any) -> None:
    outsider = user(django_user_model, "outsider", "view_session", "replay_instance",
                    staff=False)
    for who in (client, outsider):
        for response in (who.get(LIST), who.get(session_url(uid)),
                         who.post(session_url(uid), {"uid": uid, "instance": "t#0",
                                                     "action": "replay"})):
            assert response.status_code == 302
            assert response["Location"].startswith("/admin/login/")
    assert get_manager(uid).storage["t#0"].status == "failed"


def test_staff_without_the_view_permission_are_refused(django_user_model: Any,
                                                       failed: TriggerManager, uid: str) -> None:
    staff = user(django_user_model, "staff")
    assert staff.get(LIST).status_code == 403
    assert staff.get(session_url(uid)).status_code == 403
    assert f'href="{LIST}"' not in html(staff.get("/admin/"))


def test_viewing_does_not_allow_replaying_or_skipping(viewer: Client, failed: TriggerManager,
                                                      uid: str) -> None:
    page = html(viewer.get(session_url(uid)))
    assert 'value="replay"' not in page and 'value="skip"' not in page
    for action in ("replay", "skip"):
        response = viewer.post(session_url(uid), {"uid": uid, "instance": "t#0", "action": action})
        assert response.status_code == 403
    assert get_manager(uid).storage["t#0"].status == "failed"


def test_each_action_needs_its_own_permission(django_user_model: Any, failed: TriggerManager,
                                              uid: str) -> None:
    replayer = user(django_user_model, "replayer", "view_session", "replay_instance")
    page = html(replayer.get(session_url(uid)))
    assert 'value="replay"' in page and 'value="skip"' not in page
    response = replayer.post(session_url(uid), {"uid": uid, "instance": "t#0", "action": "skip"})
    assert response.status_code == 403
    assert get_manager(uid).storage["t#0"].status == "failed"
    response = replayer.post(session_url(uid), {"uid": uid, "instance": "t#0", "action": "replay"})
    assert response.status_code == 302
    assert get_manager(uid).storage["t#0"].status == "replayed"

    skipper = user(django_user_model, "skipper", "view_session", "skip_instance")
    response = skipper.post(session_url(uid), {"uid": uid, "instance": "t#1", "action": "replay"})
    assert response.status_code == 403
    response = skipper.post(session_url(uid), {"uid": uid, "instance": "t#1", "action": "skip"})
    assert response.status_code == 302
    assert get_manager(uid).storage["t#1"].status == "skipped"


def test_a_post_without_the_csrf_token_is_refused(django_user_model: Any, failed: TriggerManager,
                                                  uid: str) -> None:
    account = django_user_model.objects.create_superuser("csrf", password="x")
    client = Client(enforce_csrf_checks=True)
    client.force_login(account)
    response = client.post(session_url(uid), {"uid": uid, "instance": "t#0", "action": "replay"})
    assert response.status_code == 403
    assert get_manager(uid).storage["t#0"].status == "failed"


HOSTILE = '<script>alert("x")</script>'


def test_names_and_kwargs_from_users_are_escaped(admin_client: Client) -> None:
    uid = f"django-{HOSTILE}/../?#&"
    manager = get_manager(uid)
    manager.update_configuration({
        f"t_{HOSTILE}": {"after": [f"go{HOSTILE}"], "run": "testapp.flaky", "using": "inline"},
    })
    manager.fire(f"go{HOSTILE}", {"html": f"</pre>{HOSTILE}", HOSTILE: 1})
    for page in (html(admin_client.get(LIST)), html(admin_client.get(session_url(uid)))):
        assert "<script>" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    page = html(admin_client.get(session_url(uid)))
    assert f"t_{HOSTILE}#0".replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;") in page
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", "")  # no Graphviz: the DOT text is shown instead of the picture
        page = html(admin_client.get(session_url(uid)))
    assert "digraph workflow" in page and "<script>" not in page
    response = admin_client.post(session_url(uid), {"uid": uid, "instance": f"t_{HOSTILE}#0",
                                                     "action": "skip"}, follow=True)
    assert "<script>" not in html(response)
    assert manager.storage[f"t_{HOSTILE}#0"].status == "skipped"


def test_a_storage_that_is_down_is_a_message_not_a_crash(admin_client: Client, settings: Any,
                                                         uid: str) -> None:
    settings.TRIGGERHOOKS = {"storage": "redis://:s3cret@127.0.0.1:1/0?socket_connect_timeout=1"}
    page = html(admin_client.get(LIST))
    assert "StorageUnavailableError" in page and "s3cret" not in page
    assert "redis://:***@127.0.0.1:1/0" in page
    response = admin_client.get(session_url(uid))
    assert response.status_code == 503
    assert "StorageUnavailableError" in response.content.decode()
    assert "s3cret" not in response.content.decode()


class Unlisted(MemoryStorageBackend):
    """Memory sessions that cannot be listed (as some stores cannot)."""

    name = "django-unlisted"
    url_schemes = ("unlisted",)

    @classmethod
    def from_url(cls, url: str, uid: str, **options: Any) -> Unlisted:
        return cls(uid)

    def session_uids(self) -> list[str]:
        raise NotImplementedError("Unlisted cannot list its sessions")


def test_a_storage_that_cannot_list_its_sessions(admin_client: Client, settings: Any,
                                                 uid: str) -> None:
    with registered_class(storage_backends, "django-unlisted", Unlisted):
        settings.TRIGGERHOOKS = {"storage": "unlisted://"}
        get_manager(uid).fire("hello")
        page = html(admin_client.get(LIST))
        assert "Unlisted cannot list its sessions" in page and "Open the session" in page
        assert "<td>hello</td>" in html(admin_client.get(session_url(uid)))
