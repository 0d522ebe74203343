"""Signals of another library through a registered ``SignalAdapter``: ``@on``, ``filter_events``,
``disconnect``, ``connected`` and ``send_event`` accept them with the core's rules; a kind no
adapter accepts is refused as before. The library here is a small fake, not blinker."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from triggerhooks import SignalHandlingError, connected, filter_events, on, send_event
from triggerhooks.events.adapters import adapter_for, signal_name
from triggerhooks.events.receivers import disconnect
from triggerhooks.ext import (
    ANY,
    SignalAdapter,
    log_receiver_failure,
    post_fire,
    register_signal_adapter,
    signal_adapters,
    unregister_signal_adapter,
)


class FakeSignal:
    """A signal of a pretend library: no blinker, receivers kept as (sender, receiver) pairs."""

    def __init__(self, name: str, *args: str) -> None:
        self.name = name
        self.args = args
        self.pairs: list[tuple[Any, Callable[..., Any], bool]] = []

    def __repr__(self) -> str:
        return f"<FakeSignal {self.name}>"

    def connect(self, receiver: Callable[..., Any], sender: Any = None) -> None:
        self.pairs.append((sender, receiver, False))

    def fire(self, sender: Any, **kwargs: Any) -> list[Any]:
        """The library's own send: receivers one by one, an error stops the send."""
        return [receiver(sender, **kwargs) for wanted, receiver, _ in list(self.pairs)
                if wanted is ANY or wanted is sender]


class FakeAdapter(SignalAdapter):
    kind = "fake signals"

    def accepts(self, signal: object) -> bool:
        return isinstance(signal, FakeSignal)

    def name(self, signal: Any) -> str:
        return f"fake.{signal.name}"

    def fields(self, signal: Any) -> tuple[str, ...]:
        return tuple(signal.args)

    def connect(self, signal: Any, receiver: Callable[..., Any], sender: Any,
                raise_exception: bool) -> None:
        def call(sent_by: Any, **kwargs: Any) -> Any:
            try:
                return receiver(sent_by, **kwargs)
            except Exception as exc:
                log_receiver_failure(signal, receiver, exc, "raised" if raise_exception else "")
                if raise_exception:
                    raise
                return exc

        call.receiver = receiver  # type: ignore[attr-defined]
        self.disconnect(signal, receiver)
        signal.pairs.append((sender, call, raise_exception))

    def disconnect(self, signal: Any, receiver: Callable[..., Any]) -> None:
        signal.pairs = [pair for pair in signal.pairs if pair[1].receiver is not receiver]

    def is_connected(self, signal: Any, receiver: Callable[..., Any]) -> bool:
        return any(pair[1].receiver is receiver for pair in signal.pairs)

    def send(self, signal: Any, sender: Any, kwargs: dict[str, Any]
             ) -> list[tuple[Callable[..., Any], Any]]:
        results, caught = [], []
        for wanted, call, _ in list(signal.pairs):
            if wanted is ANY or wanted is sender:
                try:
                    results.append((call.receiver, call(sender, **kwargs)))
                except Exception as exc:
                    results.append((call.receiver, exc))
                    caught.append(exc)
        if caught:
            raise SignalHandlingError(caught)
        return results


class Mutation:
    """A sender."""


class OtherMutation:
    """Another sender."""


@pytest.fixture
def adapter() -> Iterator[FakeAdapter]:
    """The fake library's adapter, registered for one test."""
    registered = register_signal_adapter(FakeAdapter())
    yield registered
    unregister_signal_adapter(registered)


@pytest.fixture
def saved() -> FakeSignal:
    return FakeSignal("saved", "instance", "created")


def test_an_unregistered_kind_is_refused_as_before(saved: FakeSignal) -> None:
    with pytest.raises(TypeError) as caught:
        on(saved)  # type: ignore[arg-type]
    assert str(caught.value) == ("@on expects a blinker signal or a list of them, not "
                                 "<FakeSignal saved>")
    with pytest.raises(TypeError, match=r"^@on expects blinker signals, not <FakeSignal saved>$"):
        on([post_fire, saved])  # type: ignore[list-item]
    assert saved.pairs == []
    with pytest.raises(TypeError, match="send_event sends blinker signals"):
        send_event(saved, sender=Mutation, instance=1, created=True)  # type: ignore[arg-type]


def test_a_django_signal_without_the_plugin_says_what_to_install() -> None:
    lookalike = type("Signal", (), {"__module__": "django.dispatch.dispatcher"})()
    with pytest.raises(TypeError, match=r'add "triggerhooks_django" to INSTALLED_APPS'):
        on(lookalike)
    with pytest.raises(TypeError, match=r'add "triggerhooks_django" to INSTALLED_APPS'):
        on([post_fire, lookalike])


def test_a_registered_kind_is_connected_through_its_adapter(adapter: FakeAdapter,
                                                            saved: FakeSignal) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []

    @on(saved)
    def everyone(sender: Any, **kwargs: Any) -> None:
        calls.append((sender, kwargs))

    @on(saved, sender=Mutation)
    def one_sender(sender: Any, instance: Any, **kwargs: Any) -> None:
        calls.append(("only", {"instance": instance}))

    assert [pair[0] for pair in saved.pairs] == [ANY, Mutation]
    saved.fire(Mutation, instance=1, created=True)
    saved.fire(OtherMutation, instance=2, created=False)
    assert calls == [(Mutation, {"instance": 1, "created": True}), ("only", {"instance": 1}),
                     (OtherMutation, {"instance": 2, "created": False})]
    assert adapter_for(saved) is adapter and adapter_for(post_fire) is None
    with pytest.raises(TypeError, match=r"^@on\(fake\.saved, sender=None\): leave sender out"):
        on(saved, sender=None)
    assert signal_name(saved) == "fake.saved" and signal_name(post_fire) == "post_fire"


def test_raise_exception_reaches_the_adapter(adapter: FakeAdapter, saved: FakeSignal,
                                             caplog: pytest.LogCaptureFixture) -> None:
    @on(saved, raise_exception=True)
    def strict(sender: Any, **kwargs: Any) -> None:
        raise PermissionError("refused")

    @on(saved)
    def lenient(sender: Any, **kwargs: Any) -> None:
        raise KeyError("ignored")

    assert [pair[2] for pair in saved.pairs] == [True, False]
    with caplog.at_level(logging.ERROR, logger="triggerhooks.events"), \
            pytest.raises(PermissionError, match="refused"):
        saved.fire(Mutation, instance=1, created=True)
    assert caplog.messages == [
        f"receiver {__name__}.test_raise_exception_reaches_the_adapter.<locals>.strict of "
        "signal fake.saved failed (raised): PermissionError: refused"]


def test_filter_events_and_its_checks_apply(adapter: FakeAdapter, saved: FakeSignal) -> None:
    created: list[int] = []

    @on(saved)
    @filter_events(lambda created, sender: created and sender is Mutation)
    def on_create(sender: Any, instance: int, **kwargs: Any) -> None:
        created.append(instance)

    saved.fire(Mutation, instance=1, created=True)
    saved.fire(Mutation, instance=2, created=False)
    saved.fire(OtherMutation, instance=3, created=True)
    assert created == [1]

    with pytest.raises(TypeError, match=r"asks for 'instanse', which fake\.saved never passes "
                                        r"\(did you mean 'instance'\?"):
        @on(saved)
        @filter_events(lambda instanse: True)
        def misspelt(sender: Any, **kwargs: Any) -> None: ...

    with pytest.raises(TypeError, match=r"cannot take what fake\.saved passes"):
        @on(saved)
        def too_narrow(sender: Any, instance: Any) -> None: ...


def test_filter_events_above_on_is_refused_and_undone(adapter: FakeAdapter,
                                                      saved: FakeSignal) -> None:
    def receiver(sender: Any, **kwargs: Any) -> None: ...

    with pytest.raises(TypeError, match="@filter_events is above @on"):
        filter_events(lambda created: created)(on(saved)(receiver))
    assert saved.pairs == []


def test_background_and_priority_are_refused(adapter: FakeAdapter, saved: FakeSignal) -> None:
    def receiver(sender: Any, **kwargs: Any) -> None: ...

    with pytest.raises(ValueError, match=r"fake\.saved is one of the fake signals, whose "
                                         r"receivers run in the sending call"):
        on(saved, background=True)(receiver)
    with pytest.raises(ValueError, match="receivers run in connection order"):
        on([post_fire, saved], priority=5)(receiver)
    assert saved.pairs == [] and not post_fire.has_receivers_for(ANY)


def test_a_list_mixes_kinds_and_disconnect_and_connected_reach_both(
        adapter: FakeAdapter, saved: FakeSignal) -> None:
    seen: list[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(type(sender).__name__ if "manager" in kwargs else "fake")

    on([saved, post_fire])(receiver)
    saved.fire(Mutation, instance=1, created=True)
    disconnect(receiver, [saved, post_fire])
    saved.fire(Mutation, instance=2, created=True)
    assert seen == ["fake"] and saved.pairs == [] and not post_fire.receivers

    with connected(receiver, saved, sender=Mutation):
        saved.fire(Mutation, instance=3, created=True)
    saved.fire(Mutation, instance=4, created=True)
    assert seen == ["fake", "fake"] and saved.pairs == []


def test_send_event_goes_to_the_adapter(adapter: FakeAdapter, saved: FakeSignal) -> None:
    @on(saved, sender=Mutation, raise_exception=True)
    def strict(sender: Any, created: bool, **kwargs: Any) -> str:
        if not created:
            raise ValueError("not created")
        return "ok"

    assert send_event(saved, sender=Mutation, instance=1, created=True) == [(strict, "ok")]
    assert send_event(saved, OtherMutation, instance=1, created=False) == []
    with pytest.raises(SignalHandlingError, match="not created"):
        send_event(saved, sender=Mutation, instance=1, created=False)


def test_an_adapter_without_send_says_so(saved: FakeSignal) -> None:
    class NoSend(FakeAdapter):
        send = SignalAdapter.send  # type: ignore[assignment]

    registered = register_signal_adapter(NoSend())
    try:
        with pytest.raises(TypeError, match=r"send_event cannot send fake\.saved, one of the "
                                            r"fake signals"):
            send_event(saved, sender=Mutation, instance=1, created=True)
    finally:
        unregister_signal_adapter(registered)


def test_registering(adapter: FakeAdapter) -> None:
    assert register_signal_adapter(adapter) is adapter
    assert signal_adapters().count(adapter) == 1
    with pytest.raises(TypeError, match="register a SignalAdapter instance"):
        register_signal_adapter(FakeAdapter)  # type: ignore[type-var]
    unregister_signal_adapter(adapter)
    assert adapter not in signal_adapters()
    unregister_signal_adapter(adapter)  # twice: nothing happens
