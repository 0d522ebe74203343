"""Workflow files: JSON, TOML and YAML, with every problem placed at its file:line."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import ROOT
from triggerhooks import TriggerManager
from triggerhooks.config import parse_configuration, workflow_json_schema
from triggerhooks.demo import workflow_text
from triggerhooks.workflow import (
    FileProblem,
    WorkflowFileError,
    load_workflow,
    parse_workflow,
    resolve_location,
    validate_workflow,
)

# One workflow with the same three mistakes in each format; the line of each is known.
BAD = {
    "json": textwrap.dedent("""\
        {
          "t_a": {"after": ["x"], "run": "tests.echo"},
          "t_b": {
            "after": ["x", ""],
            "run": "tests.echo"
          },
          "t_c": {
            "after": ["x"],
            "run": "tests.echo",
            "withParams": {"p": 1}
          },
          "t_d": {"run": "tests.echo"}
        }
        """),
    "toml": textwrap.dedent("""\
        [t_a]
        after = ["x"]
        run = "tests.echo"

        [t_b]
        after = ["x", ""]
        run = "tests.echo"

        [t_c]
        after = ["x"]
        run = "tests.echo"
        withParams = {p = 1}

        [t_d]
        run = "tests.echo"
        """),
    "yaml": textwrap.dedent("""\
        t_a:
          after: [x]
          run: tests.echo
        t_b:
          after:
            - x
            - ""
          run: tests.echo
        t_c:
          after: [x]
          run: tests.echo
          withParams:
            p: 1
        t_d:
          run: tests.echo
        """),
}
EXPECTED_LINES = {
    "json": {"t_b.after[1]": 4, "t_c.withParams.p": 10, "t_d": 12},
    "toml": {"t_b.after[1]": 6, "t_c.withParams.p": 12, "t_d": 14},
    "yaml": {"t_b.after[1]": 7, "t_c.withParams.p": 13, "t_d": 14},
}


@pytest.mark.parametrize("fmt", ["json", "toml", "yaml"])
def test_every_problem_is_listed_with_its_line(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"workflow.{fmt}"
    path.write_text(BAD[fmt])
    with pytest.raises(WorkflowFileError) as caught:
        validate_workflow(path)
    problems = caught.value.problems
    lines = {p.location: p.line for p in problems if isinstance(p, FileProblem)}
    assert lines == EXPECTED_LINES[fmt]
    text = str(caught.value)
    assert f"{path}:{EXPECTED_LINES[fmt]['t_d']}" in text
    assert "needs 'after' or 'andEvery'" in text
    # Listed in file order, whatever order the checks found them in.
    assert [p.location for p in problems] == ["t_b.after[1]", "t_c.withParams.p", "t_d"]


@pytest.mark.parametrize("fmt", ["json", "toml", "yaml"])
def test_the_three_formats_give_the_same_tasks(fmt: str) -> None:
    fixed = {"json": BAD["json"].replace('"x", ""', '"x"').replace('{"p": 1}', '{"p": {"q": 1}}')
             .replace('{"run": "tests.echo"}', '{"after": ["y"], "run": "tests.echo"}'),
             "toml": BAD["toml"].replace('"x", ""', '"x"').replace("{p = 1}", "{p = {q = 1}}")
             .replace('[t_d]\nrun', '[t_d]\nafter = ["y"]\nrun'),
             "yaml": BAD["yaml"].replace('    - ""\n', "").replace("p: 1", "p: {q: 1}")
             .replace("t_d:\n  run", "t_d:\n  after: [y]\n  run")}
    tasks = validate_workflow(parse_workflow(fixed[fmt], fmt, f"w.{fmt}"))
    assert tasks == parse_configuration({
        "t_a": {"after": ["x"], "run": "tests.echo"},
        "t_b": {"after": ["x"], "run": "tests.echo"},
        "t_c": {"after": ["x"], "run": "tests.echo", "withParams": {"p": {"q": 1}}},
        "t_d": {"after": ["y"], "run": "tests.echo"},
    })


@pytest.mark.parametrize(("fmt", "text", "line", "column", "fragment"), [
    ("json", '{\n  "t": {"after": ["x"],,}\n}', 2, 24, "invalid JSON"),
    ("toml", '[t]\nafter = ["x"\nrun = "y"\n', 3, 1, "invalid TOML"),
    ("yaml", "t:\n  after: [x\n  run: y\n", 3, 6, "invalid YAML"),
])
def test_syntax_errors_name_line_and_column(fmt: str, text: str, line: int, column: int,
                                            fragment: str) -> None:
    with pytest.raises(WorkflowFileError) as caught:
        parse_workflow(text, fmt, f"w.{fmt}")
    [problem] = caught.value.problems
    assert isinstance(problem, FileProblem)
    assert (problem.line, problem.column) == (line, column)
    assert str(problem).startswith(f"w.{fmt}:{line}:{column}: {fragment}")


@pytest.mark.parametrize(("fmt", "text", "line"), [
    ("json", '{"t": {"after": ["x"], "run": "a"},\n "t": {"after": ["y"], "run": "b"}}', 2),
    ("yaml", "t: {after: [x], run: a}\nt: {after: [y], run: b}\n", 2),
])
def test_duplicate_keys_are_problems(fmt: str, text: str, line: int) -> None:
    with pytest.raises(WorkflowFileError) as caught:
        validate_workflow(parse_workflow(text, fmt, f"w.{fmt}"))
    [problem] = caught.value.problems
    assert "duplicate key" in problem.message
    assert isinstance(problem, FileProblem) and problem.line == line


def test_registry_checks_are_optional_and_located(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("t:\n  after: [x]\n  run: app.missing\n  using: carrier-pigeon\n")
    assert set(validate_workflow(path)) == {"t"}
    with pytest.raises(WorkflowFileError) as caught:
        validate_workflow(path, known_tasks={"tests.echo"}, known_runners={"inline"})
    found = {(p.location, p.line) for p in caught.value.problems if isinstance(p, FileProblem)}
    assert found == {("t.run", 3), ("t.using", 4)}
    assert "known: tests.echo" in str(caught.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(WorkflowFileError, match="no such file"):
        load_workflow(tmp_path / "missing.json")
    (tmp_path / "w.ini").write_text("[t]\n")
    with pytest.raises(WorkflowFileError, match=r"unknown workflow file type; use one of \.json"):
        load_workflow(tmp_path / "w.ini")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(WorkflowFileError, match="must be a mapping of task names"):
        validate_workflow(tmp_path / "list.json")


def test_a_workflow_file_error_is_a_configuration_error(tmp_path: Path) -> None:
    from triggerhooks import ConfigurationError

    (tmp_path / "w.json").write_text('{"t": {"run": "x"}}')
    with pytest.raises(ConfigurationError):
        validate_workflow(tmp_path / "w.json")


def test_locations_resolve_through_keys_with_dots() -> None:
    data = {"app.t": {"withParams": {"a.b": {"c": [1, {"d": 2}]}}}, "app": {"x": 1}}
    assert resolve_location("app.t.withParams.a.b.c[1].d", data) == (
        "app.t", "withParams", "a.b", "c", 1, "d")
    assert resolve_location("app.x", data) == ("app", "x")
    # The path stops where the data does.
    assert resolve_location("app.t.nothing.here", data) == ("app.t",)
    assert resolve_location("", data) == ()


def test_json_positions_cover_nested_values_and_escapes() -> None:
    text = '{\n "t\\"q": {\n  "after": [\n   "a",\n   "b"\n  ],\n  "run": "x"\n }\n}'
    doc = parse_workflow(text, "json", "w.json")
    assert doc.data == {'t"q': {"after": ["a", "b"], "run": "x"}}
    assert doc.positions[('t"q', "after", 1)] == (5, 4)
    assert doc.positions[('t"q', "run")] == (7, 3)


def test_the_demo_and_example_workflows_agree_and_are_valid() -> None:
    demo = validate_workflow(parse_workflow(workflow_text(), "toml", "questionnaire.toml"))
    example = validate_workflow(ROOT / "examples" / "questionnaire.yaml")
    assert demo == example
    assert set(demo) == {"t_importSubject", "t_importResponses", "t_importBrowserMetadata",
                         "t_finalize"}


def test_a_validated_file_loads_into_a_manager(manager: TriggerManager, tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"t": {"after": ["a"], "run": "tests.echo"}}))
    doc = load_workflow(path)
    validate_workflow(doc)
    manager.update_configuration(doc.data)
    manager.fire("a", {"n": 1})
    assert manager.storage["t#0"].metadata["result"] == {"received": {"a": {"n": 1}}}


def test_the_schema_describes_the_directives() -> None:
    schema = workflow_json_schema()
    task = schema["$defs"]["TaskSpec"]
    assert {"after", "andEvery", "unless", "withParams", "using", "run"} <= set(task["properties"])
    assert task["required"] == ["run"]


def test_yaml_without_pyyaml_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    with pytest.raises(WorkflowFileError, match=r"reading YAML needs PyYAML: pip install "
                                                r"'triggerhooks\[yaml\]'"):
        parse_workflow("t: {after: [x], run: y}\n", "yaml", "w.yaml")
    # JSON and TOML need nothing more.
    assert parse_workflow('{"t": {"after": ["x"], "run": "y"}}', "json").data["t"]["run"] == "y"
