"""The workflow-file loaders fuzzed (``fuzz_workflow_loaders.py``) in a process of their own
whose address space is limited: a text that made a reader allocate without bound would end
in a ``MemoryError``, one that made it recurse in a ``RecursionError``; both fail here."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

FUZZER = Path(__file__).with_name("fuzz_workflow_loaders.py")
ROOT = FUZZER.parents[2]
MEMORY_LIMIT = 512 * 1024 * 1024
EXAMPLES = 40
"""Texts per format: a few seconds in all (``python tests/core/fuzz_workflow_loaders.py 600
--random`` hunts longer)."""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def test_the_loaders_refuse_fuzzed_texts_in_bounded_memory() -> None:
    done = subprocess.run([sys.executable, str(FUZZER), str(EXAMPLES)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, preexec_fn=_limit_memory,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert done.stdout.startswith(f"{EXAMPLES * 3} texts; slowest: ")
