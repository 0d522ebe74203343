"""Workflow files built to exhaust a reader: a few lines of YAML aliases that expand to
billions of values, nesting 100,000 levels deep, one huge string. Each is refused with a
``file:line:column`` problem that names the limit and how to raise it; memory stays bounded
(the command-line test runs ``triggerhooks validate`` under an address-space limit)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from triggerhooks import InvalidSettingError
from triggerhooks.cli import cli
from triggerhooks.workflow import (
    LIMIT_ENVS,
    WorkflowFileError,
    WorkflowLimits,
    load_workflow,
    parse_workflow,
    validate_workflow,
)

DEEP = 100_000
MEMORY_LIMIT = 512 * 1024 * 1024
"""The address space ``triggerhooks validate`` gets (the reports used 1.4 GB and 8 GB)."""


def billion_laughs() -> str:
    """The 478-byte YAML file of the report: nine levels of nine aliases, 9**9 "lol"s."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "lol.yaml": billion_laughs(),
    "deep.json": "[" * DEEP + "]" * DEEP,
    "deep-object.json": '{"a":' * DEEP + "1" + "}" * DEEP,
    "deep.yaml": "[" * DEEP + "]" * DEEP,
    "deep.toml": "x = " + "[" * DEEP + "]" * DEEP + "\n",
    "dotted.toml": "a" + ".a" * DEEP + " = 1\n",
    "header.toml": "[" + "a." * DEEP + "a]\n",
    "recursive.yaml": "a: &a [*a]\n",
    "big.json": '{"t": {"after": ["a"], "run": "x", "note": "' + "a" * 10_000_000 + '"}}',
}
EXPECTED = {
    "lol.yaml": "w.yaml:2:8: more than 100,000 keys and values once its aliases are expanded "
                "(the limit is 100,000; raise it with $TRIGGERHOOKS_WORKFLOW_MAX_NODES or "
                "WorkflowLimits(max_nodes=...))",
    "deep.json": "nested too deeply to be parsed",
    "deep-object.json": "nested too deeply to be parsed",
    "deep.yaml": "w.yaml:1:65: nested more than 64 levels deep (the limit is 64; raise it with "
                 "$TRIGGERHOOKS_WORKFLOW_MAX_DEPTH or WorkflowLimits(max_depth=...))",
    "deep.toml": "w.toml:1:69: nested more than 64 levels deep",
    "dotted.toml": "w.toml:1:129: nested more than 64 levels deep",
    "header.toml": "w.toml:1:130: nested more than 64 levels deep",
    "recursive.yaml": "w.yaml:1:8: a YAML alias refers to a node that holds it (a recursive "
                      "alias)",
    "big.json": "w.json: larger than 4,194,304 bytes (the limit is 4,194,304; raise it with "
                "$TRIGGERHOOKS_WORKFLOW_MAX_BYTES or WorkflowLimits(max_bytes=...))",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_file_is_refused_naming_the_limit(name: str) -> None:
    fmt = name.rpartition(".")[2]
    with pytest.raises(WorkflowFileError) as caught:
        validate_workflow(parse_workflow(HOSTILE[name], fmt, f"w.{fmt}"))
    [problem] = caught.value.problems
    assert EXPECTED[name] in str(problem)


@pytest.mark.slow
def test_the_command_line_refuses_them_in_bounded_memory(tmp_path: Path) -> None:
    """``triggerhooks validate`` on every file at once, in a process of its own whose address
    space is limited: one line per file, an ``error:`` line, no traceback, in seconds."""
    for name, text in HOSTILE.items():
        (tmp_path / name).write_text(text)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    done = subprocess.run([sys.executable, "-m", "triggerhooks", "validate", *HOSTILE],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          preexec_fn=limited, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[-1] == f"error: {len(HOSTILE)} problems found"
    for name in HOSTILE:
        [line] = [line for line in lines if line.startswith(f"{name}:")]
        assert EXPECTED[name].split(": ", 1)[-1] in line


def test_limits_can_be_raised_per_call_and_by_environment(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.json"
    deep = {"t": {"after": ["a"], "run": "tests.echo", "note": json.loads("[" * 80 + "]" * 80)}}
    path.write_text(json.dumps(deep))
    with pytest.raises(WorkflowFileError, match="nested more than 64 levels deep"):
        load_workflow(path)
    assert load_workflow(path, WorkflowLimits(max_depth=90)).data == deep
    monkeypatch.setenv(LIMIT_ENVS["max_depth"], "90")
    assert validate_workflow(path).keys() == {"t"}
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv(LIMIT_ENVS["max_bytes"], "100")
    with pytest.raises(WorkflowFileError, match="larger than 100 bytes"):
        load_workflow(path)
    monkeypatch.setenv(LIMIT_ENVS["max_nodes"], "many")
    with pytest.raises(InvalidSettingError, match="TRIGGERHOOKS_WORKFLOW_MAX_NODES must be"):
        load_workflow(path)
    with pytest.raises(InvalidSettingError, match="max_depth must be a positive"):
        WorkflowLimits(max_depth=0)


@pytest.mark.slow
def test_a_raised_size_limit_costs_what_the_file_holds(tmp_path: Path) -> None:
    """The 10 MB string that cost 1.4 GB in the tokenizer finding positions: read with the
    size limit raised, under a memory limit, in a process of its own."""
    path = tmp_path / "big.json"
    text = '{"t": {"after": ["a"], "run": "x", "note": "' + "\\n" + "a" * 9_999_999 + '"}}'
    path.write_text(text)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2**28, 2**28));"
            "from triggerhooks.workflow import WorkflowLimits, load_workflow;"
            "doc = load_workflow(sys.argv[1], WorkflowLimits(max_bytes=20_000_000));"
            "print(len(doc.data['t']['note']), doc.positions[('t', 'note')])")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    column = text.index('"note"') + 1
    assert done.stdout.split() == ["10000000", "(1,", f"{column})"]


@pytest.mark.parametrize(("fmt", "text"), [
    ("json", '{"t": {"after": ["a"], "run": "x", "n": ' + "9" * 5000 + "}}"),
    ("yaml", "t: {after: [a], run: x, n: " + "9" * 5000 + "}\n"),
    ("toml", "[t]\nafter = ['a']\nrun = 'x'\nn = " + "9" * 5000 + "\n"),
])
def test_an_integer_python_will_not_convert_is_a_syntax_problem(fmt: str, text: str) -> None:
    with pytest.raises(WorkflowFileError, match=f"invalid {fmt.upper()}: Exceeds the limit"):
        parse_workflow(text, fmt, f"w.{fmt}")


def test_fire_kwargs_nested_too_deeply_are_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text('{"a":' * DEEP + "1" + "}" * DEEP)
    (tmp_path / "nan.json").write_text('{"score": NaN}')
    runner = CliRunner()
    for kwargs, expected in (("@" + str(tmp_path / "deep.json"), "nested too deeply"),
                             ("@" + str(tmp_path / "nan.json"), "nan at score (JSON has no NaN"),
                             ('{"a":' * 300 + "1" + "}" * 300, "nested more than 200 levels")):
        result = runner.invoke(cli, ["--storage", "memory://", "fire", "s", "a", "--kwargs",
                                     kwargs])
        assert result.exit_code in (1, 2), result.output
        assert expected in result.output and "Traceback" not in result.output
