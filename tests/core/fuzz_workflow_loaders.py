"""Fuzz the three workflow-file loaders (run by ``test_workflow_fuzz.py`` in a process of its
own, under an address-space limit): every generated text is either a workflow or refused
with a ``WorkflowFileError``, within a time bound, in bounded memory.

Texts are valid workflows rendered in each format, then mutated (slices cut, repeated and
spliced, bytes flipped), mixed with what breaks readers: brackets and indentation 100,000
deep, YAML anchors and aliases that multiply (billion laughs, merges of merges, recursive
ones), long strings, escapes of lone surrogates, NaN, huge integers, duplicate keys.

``python tests/core/fuzz_workflow_loaders.py EXAMPLES`` exits 0 when every case passed; it
prints the falsifying text's start otherwise (Hypothesis shrinks it).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from triggerhooks.workflow import WorkflowFileError, parse_workflow, validate_workflow


def _json(value: Any) -> str:
    return json.dumps(value)


def _yaml(value: Any) -> str:
    return json.dumps(value)  # JSON is YAML; block style comes from the fragments below


def _toml(value: Any) -> str:
    lines = []
    for name, task in value.items() if isinstance(value, dict) else ():
        lines.append(f"[{json.dumps(str(name))}]")
        for key, item in task.items() if isinstance(task, dict) else ():
            lines.append(f"{json.dumps(str(key))} = {json.dumps(item)}")
    return "\n".join(lines) + "\n"


RENDER = {"json": _json, "yaml": _yaml, "toml": _toml}

names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), names)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(names, inner, max_size=3), max_leaves=12)
tasks = st.dictionaries(names, st.fixed_dictionaries(
    {"run": st.sampled_from(["tests.echo", "x"])},
    optional={"after": st.lists(names, max_size=3), "andEvery": names,
              "unless": st.lists(names, max_size=2),
              "withParams": st.dictionaries(names, st.dictionaries(names, values, max_size=2),
                                            max_size=2),
              "note": values}), max_size=4)


def _deep(fmt: str, depth: int, kind: int) -> str:
    if fmt == "toml":
        return ["x = " + "[" * depth + "]" * depth, "a" + ".a" * depth + " = 1",
                "[" + "a." * depth + "a]", "x = " + "{a = " * depth + "1" + "}" * depth][kind % 4]
    if fmt == "yaml" and kind % 3 == 2:
        return "".join("  " * min(i, 2000) + "a:\n" for i in range(min(depth, 3000)))
    return ["[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth,
            "[" * depth][kind % 3]


def _aliases(width: int, levels: int, merge: bool, recursive: bool) -> str:
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    for level in range(1, levels + 1):
        items = ", ".join([f"*l{level - 1}"] * width)
        if merge:
            lines.append(f"l{level}: &l{level} {{<<: [{items}], k{level}: 1}}".replace(
                f"l0: &l0 [{', '.join(['x'] * width)}]", ""))
        else:
            lines.append(f"l{level}: &l{level} [{items}]")
    if merge:
        lines[0] = "l0: &l0 {x: 1}"
    if recursive:
        lines.append("r: &r [1, *r]")
    return "\n".join(lines) + "\n"


HOSTILE_FRAGMENTS = ['"\\udc80"', "NaN", "-Infinity", ".nan", "inf", "9" * 5000, '"a": 1, "a": 2',
                     "&a", "*a", "<<: *a", "!!python/object:os.system", "\x00", "\ufeff",
                     "'''", '"""', "#", "{", "}", "[", "]", ",", ":", "=", "\n  - ", "\t"]


@st.composite
def texts(draw: st.DrawFn, fmt: str) -> str:
    base = RENDER[fmt](draw(tasks))
    choice = draw(st.integers(0, 5))
    if choice == 0:  # nesting far past any limit
        return _deep(fmt, draw(st.sampled_from([70, 1000, 100_000])), draw(st.integers(0, 3)))
    if choice == 1 and fmt == "yaml":  # aliases that multiply
        return _aliases(draw(st.integers(2, 12)), draw(st.integers(1, 12)), draw(st.booleans()),
                        draw(st.booleans()))
    if choice == 2:  # one long string
        return base.replace('"x"', '"' + "y" * draw(st.sampled_from([10, 100_000, 1_000_000])) + '"', 1)
    for _ in range(draw(st.integers(1, 6))):  # mutations of a valid workflow
        at = draw(st.integers(0, len(base)))
        cut = draw(st.integers(at, min(len(base), at + 40)))
        kind = draw(st.integers(0, 3))
        if kind == 0:
            base = base[:at] + base[cut:]
        elif kind == 1:
            base = base[:at] + base[at:cut] * draw(st.integers(2, 2000)) + base[cut:]
        elif kind == 2:
            base = base[:at] + draw(st.sampled_from(HOSTILE_FRAGMENTS)) + base[at:]
        else:
            base = base[:at] + draw(st.text(max_size=5)) + base[cut:]
    return base


SLOWEST: list[tuple[float, str, int]] = []
DERANDOMIZE = "--random" not in sys.argv
"""The same texts on every run, unless asked for new ones (a longer hunt by hand)."""


def check(fmt: str, text: str) -> None:
    """A workflow, or a ``WorkflowFileError``: anything else (a ``RecursionError``, a
    ``MemoryError``, a library's own error) fails."""
    started = time.monotonic()
    with contextlib.suppress(WorkflowFileError):
        validate_workflow(parse_workflow(text, fmt, f"fuzz.{fmt}"))
    SLOWEST.append((time.monotonic() - started, fmt, len(text)))
    SLOWEST.sort(reverse=True)
    del SLOWEST[3:]


def main(examples: int) -> None:
    # No "explain" phase: it traces every line, which a deep text makes very slow.
    @settings(max_examples=examples * len(RENDER), deadline=None, derandomize=DERANDOMIZE,
              database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate, Phase.shrink])
    @given(data=st.data(), fmt=st.sampled_from(list(RENDER)))
    def fuzz(data: st.DataObject, fmt: str) -> None:
        check(fmt, data.draw(texts(fmt), label="text"))

    fuzz()
    print(f"{examples * len(RENDER)} texts; slowest: " + ", ".join(
        f"{fmt} of {size:,} characters in {took:.2f}s" for took, fmt, size in SLOWEST), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 100)
