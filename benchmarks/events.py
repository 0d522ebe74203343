"""What signals cost a fire: no receivers, 10 receivers, 10 filtered receivers, raw blinker.

Run: ``python benchmarks/events.py`` (options: ``--fires``, ``--rounds``).

Every fire runs one task inline (an ``andEvery`` task on the memory storage),
so it sends 7 signals: pre_fire, task_scheduled, post_fire, task_started,
pre_fire (cascade), task_completed, post_fire (cascade). Scenarios are
measured in interleaved rounds and the best round is reported, so the ratios
hold on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from triggerhooks import (
    MemoryStorageBackend,
    TriggerManager,
    capture_signals,
    connected,
    filter_events,
    send_event,
    trigger_task,
)
from triggerhooks.core.types import Notice
from triggerhooks.signals import namespace
from triggerhooks.task import TaskContext
from triggerhooks.testing.signals import CapturedSignals

RECEIVERS = 10


@trigger_task(name="benchmarks.events.noop")
def noop(context: TaskContext) -> dict[str, Any]:
    return {"ok": True}


class SilentManager(TriggerManager):
    """Floor: instance signals are not even looked at (what a signal-free engine would cost)."""

    def _announce(self, notice: Notice) -> None:
        return None


def make_receivers() -> list[Callable[..., Any]]:
    def make(index: int) -> Callable[..., Any]:
        def receiver(sender: Any, **kwargs: Any) -> None:
            return None
        receiver.__qualname__ = f"receiver_{index}"
        return receiver
    return [make(i) for i in range(RECEIVERS)]


def make_filtered() -> list[Callable[..., Any]]:
    # A predicate of two named arguments, true for every signal: its full cost is paid.
    return [filter_events(lambda sender, session_uid: session_uid is not None)(r)
            for r in make_receivers()]


def new_manager(cls: type[TriggerManager] = TriggerManager) -> TriggerManager:
    manager = cls(MemoryStorageBackend(f"bench-{uuid.uuid4().hex}"))
    manager.update_configuration({"t": {"andEvery": "page", "run": "benchmarks.events.noop"}})
    manager.fire("page")  # warm up (and finalize once, outside the timing)
    return manager


def time_fires(manager: TriggerManager, fires: int) -> float:
    fire = manager.fire
    start = time.perf_counter()
    for _ in range(fires):
        fire("page", {"n": 1})
    return (time.perf_counter() - start) / fires


def record_one_fire() -> CapturedSignals:
    manager = new_manager()
    with capture_signals() as sent:
        manager.fire("page", {"n": 1})
    manager.storage.clear()
    return sent


def time_sends(sent: CapturedSignals, send: Callable[..., Any], fires: int) -> float:
    """The same signals a fire sends, with the same arguments, sent ``fires`` times."""
    calls = [(namespace[s.name], s.sender, s.kwargs) for s in sent]
    start = time.perf_counter()
    for _ in range(fires):
        for signal, sender, kwargs in calls:
            send(signal, sender, **kwargs)
    return (time.perf_counter() - start) / fires


def blinker_send(signal: Any, sender: Any, **kwargs: Any) -> Any:
    return signal.send(sender, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=2000, help="fires per round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    args = parser.parse_args()

    sent = record_one_fire()
    signals = [namespace[name] for name in dict.fromkeys(sent.names)]
    plain, filtered = make_receivers(), make_filtered()

    def with_receivers(receivers: list[Callable[..., Any]], run: Callable[[], float]) -> float:
        with ExitStack() as stack:
            for receiver in receivers:
                stack.enter_context(connected(receiver, signals))
            return run()

    def fires(cls: type[TriggerManager] = TriggerManager) -> Callable[[], float]:
        def run() -> float:
            manager = new_manager(cls)
            try:
                return time_fires(manager, args.fires)
            finally:
                manager.storage.clear()
        return run

    scenarios: dict[str, Callable[[], float]] = {
        "fire, instance signals not even looked at (floor)": fires(SilentManager),
        "fire, no receivers": fires(),
        f"fire, {RECEIVERS} receivers per signal": lambda: with_receivers(plain, fires()),
        f"fire, {RECEIVERS} filter_events receivers per signal":
            lambda: with_receivers(filtered, fires()),
        f"raw blinker send of those {len(sent)} signals, {RECEIVERS} receivers":
            lambda: with_receivers(plain, lambda: time_sends(sent, blinker_send, args.fires)),
        f"send_event of those {len(sent)} signals, {RECEIVERS} receivers":
            lambda: with_receivers(plain, lambda: time_sends(sent, send_event, args.fires)),
        f"send_event of those {len(sent)} signals, {RECEIVERS} filtered receivers":
            lambda: with_receivers(filtered, lambda: time_sends(sent, send_event, args.fires)),
    }
    results: dict[str, list[float]] = {name: [] for name in scenarios}
    for _ in range(args.rounds):
        for name, run in scenarios.items():
            results[name].append(run())

    best = {name: min(times) * 1e6 for name, times in results.items()}
    median = {name: statistics.median(times) * 1e6 for name, times in results.items()}
    names = list(scenarios)
    floor, bare, plain_fire, filtered_fire, raw = (best[n] for n in names[:5])
    width = max(map(len, names))
    print(f"signals per fire: {len(sent)} ({', '.join(sent.names)})")
    print(f"{args.rounds} rounds x {args.fires} fires; best round (median in brackets)\n")
    print(f"{'scenario':<{width}} | {'us per fire':>18} | {'vs no receivers':>15}")
    print(f"{'-' * width}-|-{'-' * 18}-|-{'-' * 15}")
    for name in names:
        relative = f"{best[name] / bare:.2f}x" if name.startswith("fire") else ""
        print(f"{name:<{width}} | {best[name]:7.2f} ({median[name]:7.2f}) | {relative:>15}")
    print()
    print(f"cost of signal code with no receivers: {bare - floor:+.2f} us per fire "
          f"({(bare - floor) / floor:+.1%} of a fire)")
    print(f"added by {RECEIVERS} receivers: {plain_fire - bare:.2f} us per fire; raw blinker "
          f"dispatch to them: {raw:.2f} us -> {(plain_fire - bare) / raw:.2f}x raw blinker")
    print(f"added by {RECEIVERS} filtered receivers: {filtered_fire - bare:.2f} us per fire "
          f"-> {(filtered_fire - bare) / raw:.2f}x raw blinker")


if __name__ == "__main__":
    main()
