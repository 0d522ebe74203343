"""The soak, long: real Celery workers under repeated faults, per fault kind and broker.

Run: ``python benchmarks/soak.py --duration 240 --broker both`` with the plugin
installed (``pip install -e . -e plugins/triggerhooks-celery[test]``),
``redis-server`` on the PATH, Redis at 127.0.0.1:6379 (the tasks' records) and,
for ``rabbitmq``, RabbitMQ at 127.0.0.1:5672 (guest, ``rabbitmqctl``).

For each broker, ``--duration`` seconds of firing are split between four
rounds: one per fault kind — ``child`` (SIGKILL of a pool child), ``worker``
(SIGKILL of a whole worker), ``redis`` (SIGKILL and restart of the storage's
append-only Redis, the broker's too with ``redis``) — repeated every
``--every`` seconds, and one ``mixed`` round that cycles through all three.
Each round is a fresh run of ``plugins/triggerhooks-celery/tests/celery_soak.py``
(the harness of the short soak test: workers, sweeper, fire processes,
audit) with ``--sessions`` sessions. The table: fires acknowledged, instances,
stuck, lost, twice-ended, task runs started again after a kill, time to
drain after the last fault (or the last fire), per round. Exits 1 when any
round left something stuck, lost, extra or ended twice.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "triggerhooks-celery"
                       / "tests"))

from celery_soak import FAULT_KINDS, SoakConfig, SoakResult, run_soak

HEADER = ("broker", "faults", "fires", "instances", "stuck", "lost", "extra", "twice-ended",
          "re-runs", "w-restarts", "drain (s)", "bound (s)")


def rounds(duration: float, every: float) -> list[tuple[str, float, tuple[str, ...]]]:
    """(name, firing seconds, faults) of each round."""
    seconds = duration / (len(FAULT_KINDS) + 1)
    count = max(1, int(seconds / every))
    mixed = tuple(FAULT_KINDS[n % len(FAULT_KINDS)] for n in range(max(count, 3)))
    return [*((kind, seconds, (kind,) * count) for kind in FAULT_KINDS),
            ("mixed", seconds, mixed)]


def row(name: str, result: SoakResult, config: SoakConfig) -> tuple[str, ...]:
    drain = "never" if result.drain_seconds is None else f"{result.drain_seconds:.1f}"
    return (result.broker, f"{name} x{len(result.faults)}", f"{result.acked}/{result.fires}",
            str(result.instances), str(len(result.stuck) + len(result.open)),
            str(len(result.lost)), str(len(result.extra)), str(len(result.twice_ended)),
            str(result.restarted_runs), str(result.worker_restarts), drain,
            f"{config.drain_bound:.1f}")


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[n]) for r in [HEADER, *rows]) for n in range(len(HEADER))]
    for line in [HEADER, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=240.0,
                        help="seconds of firing per broker, split between the rounds")
    parser.add_argument("--sessions", type=int, default=100, help="sessions per round")
    parser.add_argument("--broker", choices=["redis", "rabbitmq", "both"], default="both")
    parser.add_argument("--every", type=float, default=6.0, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    brokers = ["redis", "rabbitmq"] if args.broker == "both" else [args.broker]
    rows: list[tuple[str, ...]] = []
    clean = True
    with tempfile.TemporaryDirectory(prefix="th-soak-") as logs:
        for broker in brokers:
            for name, seconds, faults in rounds(args.duration, args.every):
                config = SoakConfig(broker=broker, sessions=args.sessions, fire_seconds=seconds,
                                    faults=faults, seed=args.seed, log_dir=Path(logs))
                result = run_soak(config)
                print(result.summary(), file=sys.stderr, flush=True)
                for problem in (*result.stuck, *result.open, *result.lost, *result.extra,
                                *result.twice_ended, *result.unstarted_outcomes):
                    print(f"  {broker}/{name}: {problem}", file=sys.stderr)
                clean = clean and result.clean
                rows.append(row(name, result, config))
    print_table(rows)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
