"""Django signals through ``@on`` and ``filter_events``: ``post_save`` receivers in the test
project, their sender and predicates, and ``raise_exception`` rolling back the transaction the
save ran in (as Caluma documents); ``send_event`` on a Django signal keeps the core's rules."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
import testapp.receivers
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal
from testapp.models import Answer, Order, Question
from triggerhooks_django.signals import DJANGO_SIGNALS

from triggerhooks import SignalHandlingError, connected, filter_events, on, send_event
from triggerhooks.ext import signal_adapters


def answer(question: str, value: str = "") -> Answer:
    """Save an answer (and its question, when new), as a form would."""
    return Answer.objects.create(question=Question.objects.get_or_create(slug=question)[0],
                                 value=value)


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What triggerhooks logged (Django's ``send_robust`` also logs under ``django.dispatch``)."""
    return [record.getMessage() for record in caplog.records if record.name == "triggerhooks.events"]


def name_of(func: Any) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def test_the_adapter_is_registered_by_importing_the_app() -> None:
    assert DJANGO_SIGNALS in signal_adapters()
    assert DJANGO_SIGNALS.name(post_save) == "post_save"


@pytest.mark.usefixtures("db")
def test_an_apps_receivers_module_receives_post_save() -> None:
    testapp.receivers.ANSWERED.clear()
    saved = answer("name", "Ada")
    saved.value = "Grace"
    saved.save()
    answer("not-recorded", "filtered out by its filter_events")
    assert testapp.receivers.ANSWERED == [("name", "Ada", True), ("name", "Grace", False)]


@pytest.mark.usefixtures("db")
def test_a_sender_selects_the_saves_of_one_model() -> None:
    answers: list[tuple[Any, str, bool]] = []
    every: list[Any] = []
    orders: list[str] = []

    @on(post_save, sender=Answer)
    def on_answer(sender: Any, instance: Answer, created: bool, signal: Signal,
                  **kwargs: Any) -> None:
        assert signal is post_save
        answers.append((sender, instance.value, created))

    @on(post_save)
    def on_any(sender: Any, **kwargs: Any) -> None:
        every.append(sender)

    @on(post_save, sender="testapp.Order")  # a model signal's lazy sender, as Django takes it
    def on_order(sender: Any, instance: Order, **kwargs: Any) -> None:
        orders.append(instance.number)

    Order.objects.create(number="o-1")
    answer("name", "Ada")
    assert answers == [(Answer, "Ada", True)]
    assert every == [Order, Question, Answer]
    assert orders == ["o-1"]


@pytest.mark.usefixtures("db")
def test_filter_events_selects_some_saves() -> None:
    chosen: list[str] = []

    @on([post_save, post_delete], sender=Answer)
    @filter_events(lambda instance, signal, created=True: created and instance.question_id == "age")
    def first_age_answers(sender: Any, instance: Answer, signal: Signal, **kwargs: Any) -> None:
        chosen.append(f"{'saved' if signal is post_save else 'deleted'} {instance.value}")

    first = answer("age", "41")
    first.value = "42"
    first.save()  # not created: filtered out
    answer("name", "Ada")  # another question: filtered out
    first.delete()  # post_delete passes no created: the default says yes
    assert chosen == ["saved 41", "deleted 42"]


def test_receivers_and_predicates_are_checked_when_connecting() -> None:
    with pytest.raises(TypeError, match=r"asks for 'instanse', which post_save never passes "
                                        r"\(did you mean 'instance'\?"):
        @on(post_save, sender=Answer)
        @filter_events(lambda instanse: True)
        def misspelt(sender: Any, **kwargs: Any) -> None: ...

    with pytest.raises(TypeError, match=r"cannot take what post_save passes .* should accept "
                                        r"\*\*kwargs"):
        @on(post_save, sender=Answer)
        def narrow(sender: Any, instance: Answer, created: bool) -> None: ...

    assert [name_of(receiver) for _, receiver in DJANGO_SIGNALS.connected_receivers()] == [
        "testapp.receivers.remember_answer"]


@pytest.mark.usefixtures("transactional_db")
def test_a_raise_exception_receiver_rolls_the_transaction_back(
        caplog: pytest.LogCaptureFixture) -> None:
    later: list[str] = []

    @on(post_save, sender=Answer, raise_exception=True)
    @filter_events(lambda instance: instance.question_id == "locked")
    def refuse_locked(sender: Any, instance: Answer, **kwargs: Any) -> None:
        raise PermissionError(f"{instance.question_id} is locked")

    @on(post_save, sender=Answer)
    def after_it(sender: Any, instance: Answer, **kwargs: Any) -> None:
        later.append(instance.value)

    with caplog.at_level(logging.ERROR), pytest.raises(PermissionError, match="locked is locked"), \
            transaction.atomic():
        Order.objects.create(number="saved-in-the-same-transaction")
        answer("locked", "refused")
    assert not Answer.objects.exists() and not Question.objects.exists()
    assert not Order.objects.exists()
    assert later == []  # Django's send stops at the error: the receivers after it did not run
    assert logged(caplog) == [f"receiver {name_of(refuse_locked)} of signal post_save failed "
                              "(raise_exception: raised): PermissionError: locked is locked"]

    answer("open", "accepted")
    assert later == ["accepted"]


@pytest.mark.usefixtures("transactional_db")
def test_without_raise_exception_an_error_is_logged_and_the_save_kept(
        caplog: pytest.LogCaptureFixture) -> None:
    later: list[str] = []

    @on(post_save, sender=Answer)
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("broken receiver")

    @on(post_save, sender=Answer)
    def after_it(sender: Any, instance: Answer, **kwargs: Any) -> None:
        later.append(instance.value)

    with caplog.at_level(logging.ERROR), transaction.atomic():
        saved = answer("name", "Ada")
    assert Answer.objects.get(pk=saved.pk).value == "Ada"
    assert later == ["Ada"]
    assert logged(caplog) == [f"receiver {name_of(broken)} of signal post_save failed: "
                              "RuntimeError: broken receiver"]
    assert "Traceback" in caplog.text


def test_background_and_priority_are_refused() -> None:
    def receiver(sender: Any, **kwargs: Any) -> None: ...

    with pytest.raises(ValueError, match=r"post_save is a Django signal: Django runs its "
                                         r"receivers in the call that sends it .*\.fire_on_commit"):
        on(post_save, sender=Answer, background=True)(receiver)
    with pytest.raises(ValueError, match=r"in the order they were connected; connect it "
                                         r"without priority="):
        on(post_save, priority=10)(receiver)
    assert not DJANGO_SIGNALS.is_connected(post_save, receiver)


@pytest.mark.usefixtures("db")
def test_connecting_again_replaces_and_a_reloaded_module_connects_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "thdj_answers.py").write_text(
        "from django.db.models.signals import post_save\n"
        "from testapp.models import Answer\n"
        "from triggerhooks import on\n\n"
        "if 'CALLS' not in globals():  # kept across reloads\n"
        "    CALLS = []\n\n\n"
        "@on(post_save, sender=Answer)\n"
        "def count(sender, instance, **kwargs):\n"
        "    CALLS.append(getattr(instance, 'value', None) or instance.number)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        module: Any = importlib.import_module("thdj_answers")
        module = importlib.reload(module)
        on(post_save, sender=Answer)(module.count)
        answer("name", "once")
        assert module.CALLS == ["once"]

        on(post_save, sender=Order)(module.count)  # another sender: a second connection
        Order.objects.create(number="counted")
        DJANGO_SIGNALS.disconnect(post_save, module.count)  # every sender
        answer("name", "not counted")
        Order.objects.create(number="not counted")
        assert module.CALLS == ["once", "counted"]
    finally:
        sys.modules.pop("thdj_answers", None)


def test_two_closures_of_one_name_stay_two(db: Any) -> None:
    seen: list[int] = []
    for n in (1, 2):
        def receiver(sender: Any, n: int = n, **kwargs: Any) -> None:
            seen.append(n)

        on(post_save, sender=Answer)(receiver)
    answer("name")
    assert seen == [1, 2]


@pytest.mark.usefixtures("db")
def test_connected_and_filter_events_above_on() -> None:
    seen: list[str] = []

    def receiver(sender: Any, instance: Answer, **kwargs: Any) -> None:
        seen.append(instance.value)

    with connected(receiver, post_save, sender=Answer):
        answer("name", "inside")
    answer("name", "outside")
    assert seen == ["inside"]

    with pytest.raises(TypeError, match="@filter_events is above @on"):
        filter_events(lambda created: created)(on(post_save, sender=Answer)(receiver))
    assert not DJANGO_SIGNALS.is_connected(post_save, receiver)


@pytest.mark.usefixtures("db")
def test_send_event_on_a_django_signal_keeps_the_core_rules(
        caplog: pytest.LogCaptureFixture) -> None:
    later: list[str] = []
    saved = answer("name", "Ada")

    @on(post_save, sender=Answer, raise_exception=True)
    def strict(sender: Any, **kwargs: Any) -> None:
        raise PermissionError("refused")

    @on(post_save, sender=Answer)
    def after_it(sender: Any, instance: Answer, **kwargs: Any) -> str:
        later.append(instance.value)
        return "noted"

    def plain(sender: Any, **kwargs: Any) -> None:  # Django's own connect: no flags
        raise KeyError("plain")

    post_save.connect(plain, sender=Answer, weak=False)
    try:
        with caplog.at_level(logging.ERROR), pytest.raises(SignalHandlingError) as caught:
            send_event(post_save, sender=Answer, instance=saved, created=False, raw=False,
                       using="default", update_fields=None)
    finally:
        post_save.disconnect(plain, sender=Answer)
    assert later == ["Ada"]  # every receiver ran
    assert [type(exc) for exc in caught.value.caught_exceptions] == [PermissionError]
    assert logged(caplog) == [
        f"receiver {name_of(strict)} of signal post_save failed (raise_exception: raised): "
        "PermissionError: refused",
        f"receiver {name_of(plain)} of signal post_save failed: KeyError: 'plain'"]


def test_an_applications_own_django_signal() -> None:
    completed_work_item = Signal()

    class CompleteWorkItem:
        """A mutation: the sender."""

    @on(completed_work_item, sender=CompleteWorkItem)
    @filter_events(lambda work_item: work_item != "draft")  # its arguments are not known: unchecked
    def notify(sender: Any, work_item: str, **kwargs: Any) -> str:
        return f"mail about {work_item}"

    assert send_event(completed_work_item, sender=CompleteWorkItem, work_item="review") == [
        (notify, "mail about review")]
    assert send_event(completed_work_item, sender=CompleteWorkItem, work_item="draft") == [
        (notify, None)]
    assert completed_work_item.send(sender=object, work_item="review") == []
    assert DJANGO_SIGNALS.name(completed_work_item).startswith("<django.dispatch")
