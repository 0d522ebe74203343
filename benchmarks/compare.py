"""Before and after: one benchmark run alternately against an earlier commit and this tree.

    python benchmarks/compare.py BASE_REV [--rounds 2] [--script benchmarks/storage.py]
        [--grep REGEX] [-- ARGS...]

Both sides run the *earlier* commit's script (so a benchmark that changed with the
code measures the same thing on both), each with ``PYTHONPATH`` set to its own tree, in
turns, so that both see the same machine; a refactor that slowed a path shows as a
steady gap between the two columns of runs. Lines matching ``--grep`` are printed,
labelled with their side and round.

    python benchmarks/compare.py HEAD~5 --grep 'fire, nothing ready|cascade hop|round' \\
        -- --quick --backends memory,redis
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def run(tree: Path, script: Path, args: list[str]) -> str:
    """``script`` with ``tree``'s triggerhooks; its output."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run([sys.executable, str(script), *args], env=env, cwd=tree,
                            capture_output=True, text=True, check=True)
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", help="the earlier commit (any git revision)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--script", default="benchmarks/storage.py")
    parser.add_argument("--grep", default="", help="print only lines matching this regex")
    argv = sys.argv[1:]
    ours, theirs = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (
        argv, [])
    options = parser.parse_args(ours)
    options.args = theirs
    wanted = re.compile(options.grep)
    with tempfile.TemporaryDirectory() as temp:
        base = Path(temp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(base), options.base],
                       cwd=HERE, check=True)
        try:
            for round_ in range(1, options.rounds + 1):
                for label, tree in (("before", base), ("after", HERE)):
                    print(f"== {label} {options.base if label == 'before' else 'tree'} "
                          f"(round {round_})", flush=True)
                    for line in run(tree, base / options.script, options.args).splitlines():
                        if wanted.search(line):
                            print(f"{label:>6} | {line}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=HERE,
                           check=False)


if __name__ == "__main__":
    main()
