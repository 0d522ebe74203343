"""Workflow pictures: the graph model, Mermaid and DOT text, Graphviz images."""

from __future__ import annotations

import pytest

from tests.helpers import needs_dot
from triggerhooks import TriggerManager
from triggerhooks.config import parse_configuration
from triggerhooks.graph import GraphvizError, WorkflowGraph, render_image, to_dot, to_mermaid

TASKS = parse_configuration({
    "t_subject": {"after": ["first", "complete"], "run": "tests.echo"},
    "t_pages": {"after": ["t_subject"], "andEvery": "page", "run": "tests.noop"},
    "t_meta": {"after": ["t_subject"], "unless": ["embedded"], "run": "tests.boom"},
})


def test_edges_and_nodes() -> None:
    graph = WorkflowGraph.build(TASKS)
    assert graph.triggers == ["first", "complete", "page", "embedded"]
    assert {(e.source, e.target, e.kind) for e in graph.edges} == {
        ("first", "t_subject", "after"), ("complete", "t_subject", "after"),
        ("t_subject", "t_pages", "after"), ("page", "t_pages", "every"),
        ("t_subject", "t_meta", "after"), ("embedded", "t_meta", "unless")}
    assert not graph.is_session


def test_session_colours(manager: TriggerManager) -> None:
    manager.update_configuration({name: config.to_json() for name, config in TASKS.items()})
    for _ in range(11):
        manager.fire("page")
    manager.fire("first")
    manager.fire("complete")
    storage = manager.storage
    graph = WorkflowGraph.build(storage.tasks, storage.instances.values(), storage.latest_kwargs)
    assert graph.task_status("t_subject") == "finished"
    assert graph.task_status("t_meta") == "failed"
    assert graph.instance_lines("t_pages")[:2] == [("#0 finished", "finished"),
                                                   ("#1 finished", "finished")]
    assert graph.instance_lines("t_pages")[-1] == ("+3 more", "")
    assert graph.fired >= {"first", "complete", "page"}

    mermaid = to_mermaid(graph)
    ids = {name: f"n{i}" for i, name in enumerate([*graph.triggers, *graph.tasks])}
    assert f"class {ids['t_meta']} failed" in mermaid
    assert f"class {ids['first']} fired" in mermaid
    assert f"class {ids['embedded']} trigger" in mermaid
    dot = to_dot(graph)
    assert '<TD BGCOLOR="#fca5a5">#0 failed</TD>' in dot
    assert "+3 more" in dot


def test_names_are_escaped() -> None:
    tasks = parse_configuration({'t "quoted" <b>': {"after": ['say "hi" & go'], "run": "x"}})
    graph = WorkflowGraph.build(tasks, title='a "title"')
    mermaid = to_mermaid(graph)
    assert '(["say #quot;hi#quot; #amp; go"])' in mermaid
    assert "<b>t #quot;quoted#quot; #lt;b#gt;</b>" in mermaid
    dot = to_dot(graph)
    assert 'label="say \\"hi\\" & go"' in dot
    assert 'label="a \\"title\\""' in dot


@needs_dot
def test_render_image() -> None:
    svg = render_image(to_dot(WorkflowGraph.build(TASKS)), "svg").decode()
    assert "<svg" in svg and "t_subject" in svg
    with pytest.raises(GraphvizError, match=r"Graphviz 'dot' failed: .*syntax error"):
        render_image("digraph {", "svg")
    with pytest.raises(ValueError, match="use svg or png"):
        render_image("digraph {}", "pdf")


def test_render_image_without_graphviz() -> None:
    with pytest.raises(GraphvizError, match="not found on PATH: install Graphviz"):
        render_image("digraph {}", "svg", dot="no-such-graphviz-binary")
