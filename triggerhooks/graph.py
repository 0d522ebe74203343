"""A workflow as a picture: Mermaid and Graphviz DOT text, and SVG/PNG through Graphviz ``dot``.

Triggers are rounded nodes, tasks are boxes. An arrow goes from each trigger
a task waits for (``after``) to the task; ``andEvery`` arrows are bold and
``unless`` arrows dashed. A task used as a trigger (a cascade) is one node.
Drawn for a session, tasks are coloured by the status of their instances,
each instance is listed with its status, and fired triggers are filled.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .exceptions import TriggerhooksError
from .models import TaskConfig, TaskInstance, TaskStatus

__all__ = [
    "STATUS_COLOURS",
    "GraphvizError",
    "WorkflowGraph",
    "render_image",
    "to_dot",
    "to_mermaid",
]

STATUS_COLOURS: dict[str, str] = {
    "unstarted": "#e5e7eb",
    "scheduled": "#bfdbfe",
    "running": "#60a5fa",
    "finished": "#86efac",
    "failed": "#fca5a5",
    "replayed": "#d8b4fe",
    "skipped": "#fde68a",
    "abandoned": "#9ca3af",
}
"""Fill colour of each instance status."""

FIRED_COLOUR = "#fef3c7"

# The status that stands for a task with several instances: the one needing attention first.
_PRIORITY = [TaskStatus.FAILED, TaskStatus.RUNNING, TaskStatus.SCHEDULED, TaskStatus.UNSTARTED,
             TaskStatus.FINISHED, TaskStatus.SKIPPED, TaskStatus.REPLAYED, TaskStatus.ABANDONED]


class GraphvizError(TriggerhooksError):
    """Graphviz ``dot`` is not installed or could not draw the graph."""


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    kind: str  # "after", "every" or "unless"


@dataclass(slots=True)
class WorkflowGraph:
    """The nodes and edges of a workflow, with instance statuses when drawn for a session."""

    tasks: dict[str, TaskConfig]
    triggers: list[str]
    edges: list[Edge]
    instances: dict[str, list[TaskInstance]] = field(default_factory=dict)
    fired: set[str] = field(default_factory=set)
    title: str = ""
    max_instances: int = 8

    @classmethod
    def build(cls, tasks: Mapping[str, TaskConfig], instances: Iterable[TaskInstance] = (),
              fired: Iterable[str] = (), title: str = "") -> WorkflowGraph:
        """The graph of ``tasks``; pass a session's instances and fired triggers to colour it."""
        edges: list[Edge] = []
        triggers: dict[str, None] = {}
        for config in tasks.values():
            for trigger in config.requires:
                edges.append(Edge(trigger, config.name, "after"))
            if config.and_every is not None:
                edges.append(Edge(config.and_every, config.name, "every"))
            for trigger in config.unless:
                edges.append(Edge(trigger, config.name, "unless"))
        for edge in edges:
            if edge.source not in tasks:
                triggers.setdefault(edge.source)
        by_task: dict[str, list[TaskInstance]] = {}
        for instance in instances:
            by_task.setdefault(instance.task_name, []).append(instance)
        for found in by_task.values():
            found.sort(key=lambda i: i.index)
        return cls(dict(tasks), list(triggers), edges, by_task, set(fired), title)

    def task_status(self, task: str) -> TaskStatus | None:
        """The status a task is drawn with: its instances' most urgent one."""
        statuses = {instance.status for instance in self.instances.get(task, ())}
        return next((status for status in _PRIORITY if status in statuses), None)

    def instance_lines(self, task: str) -> list[tuple[str, str]]:
        """``(label, status)`` per instance shown for ``task``, ``+N more`` past the limit."""
        found = self.instances.get(task, [])
        shown = [(f"#{i.index} {i.status.value}", i.status.value)
                 for i in found[:self.max_instances]]
        if len(found) > self.max_instances:
            shown.append((f"+{len(found) - self.max_instances} more", ""))
        return shown

    @property
    def is_session(self) -> bool:
        return bool(self.instances or self.fired)


def _ids(graph: WorkflowGraph) -> dict[str, str]:
    names = [*graph.triggers, *graph.tasks]
    return {name: f"n{index}" for index, name in enumerate(names)}


# -- Mermaid -----------------------------------------------------------------------------------

def _mermaid_text(text: str) -> str:
    return (text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;"))


def to_mermaid(graph: WorkflowGraph) -> str:
    """The graph as a Mermaid flowchart (renders on GitHub, GitLab and in many editors)."""
    ids = _ids(graph)
    lines = []
    if graph.title:
        lines += ["---", f"title: {_mermaid_text(graph.title)}", "---"]
    lines.append("flowchart LR")
    for trigger in graph.triggers:
        lines.append(f'    {ids[trigger]}(["{_mermaid_text(trigger)}"])')
    for name in graph.tasks:
        label = f"<b>{_mermaid_text(name)}</b>"
        for text, _ in graph.instance_lines(name):
            label += f"<br/>{_mermaid_text(text)}"
        lines.append(f'    {ids[name]}["{label}"]')
    arrows = {"after": "-->", "every": "==>|every|", "unless": "-.->|unless|"}
    for edge in graph.edges:
        lines.append(f"    {ids[edge.source]} {arrows[edge.kind]} {ids[edge.target]}")
    lines.append("    classDef trigger fill:#ffffff,stroke:#6b7280")
    lines.append(f"    classDef fired fill:{FIRED_COLOUR},stroke:#b45309")
    lines.append("    classDef task fill:#ffffff,stroke:#374151")
    for status, colour in STATUS_COLOURS.items():
        lines.append(f"    classDef {status} fill:{colour},stroke:#374151")
    for trigger in graph.triggers:
        kind = "fired" if trigger in graph.fired else "trigger"
        lines.append(f"    class {ids[trigger]} {kind}")
    for name in graph.tasks:
        found = graph.task_status(name)
        lines.append(f"    class {ids[name]} {found.value if found else 'task'}")
    return "\n".join(lines) + "\n"


# -- Graphviz DOT ------------------------------------------------------------------------------

def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _html(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _dot_task_label(graph: WorkflowGraph, name: str) -> str:
    rows = [f"<TR><TD><B>{_html(name)}</B></TD></TR>"]
    for text, status in graph.instance_lines(name):
        colour = STATUS_COLOURS.get(status, "#ffffff")
        rows.append(f'<TR><TD BGCOLOR="{colour}">{_html(text)}</TD></TR>')
    return "<<TABLE BORDER=\"0\" CELLBORDER=\"1\" CELLSPACING=\"0\" CELLPADDING=\"4\">" \
        + "".join(rows) + "</TABLE>>"


def to_dot(graph: WorkflowGraph) -> str:
    """The graph in Graphviz DOT (``dot -Tsvg`` draws it)."""
    ids = _ids(graph)
    lines = ["digraph workflow {", "    rankdir=LR;", '    graph [fontname="Helvetica"];',
             '    node [fontname="Helvetica", fontsize=11];',
             '    edge [fontname="Helvetica", fontsize=9, color="#4b5563"];']
    if graph.title:
        lines.append(f"    label={_dot_string(graph.title)}; labelloc=t;")
    for trigger in graph.triggers:
        fill = FIRED_COLOUR if trigger in graph.fired else "#ffffff"
        lines.append(f"    {ids[trigger]} [label={_dot_string(trigger)}, shape=box, "
                     f'style="rounded,filled", fillcolor="{fill}", color="#6b7280"];')
    for name in graph.tasks:
        status = graph.task_status(name)
        fill = STATUS_COLOURS[status.value] if status else "#ffffff"
        if graph.instance_lines(name):
            lines.append(f"    {ids[name]} [label={_dot_task_label(graph, name)}, shape=plain, "
                         f'style=filled, fillcolor="{fill}"];')
        else:
            lines.append(f"    {ids[name]} [label={_dot_string(name)}, shape=box, "
                         f'style=filled, fillcolor="{fill}"];')
    styles = {"after": "", "every": ' [label="every", penwidth=2.5]',
              "unless": ' [label="unless", style=dashed, color="#b91c1c"]'}
    for edge in graph.edges:
        lines.append(f"    {ids[edge.source]} -> {ids[edge.target]}{styles[edge.kind]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_image(dot_source: str, format: str, dot: str = "dot", timeout: float = 60.0) -> bytes:
    """Draw DOT text as ``svg`` or ``png`` with Graphviz; raises :class:`GraphvizError`
    when ``dot`` is not installed or fails."""
    if format not in ("svg", "png"):
        raise ValueError(f"cannot draw {format!r}; use svg or png")
    executable = shutil.which(dot)
    if executable is None:
        raise GraphvizError(f"Graphviz {dot!r} was not found on PATH: install Graphviz "
                            "(e.g. apt-get install graphviz) or write DOT or Mermaid text instead")
    try:
        done = subprocess.run([executable, f"-T{format}"], input=dot_source.encode(),
                              capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GraphvizError(f"Graphviz {dot!r} failed: {exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
        raise GraphvizError(f"Graphviz {dot!r} failed: {message}")
    return done.stdout
