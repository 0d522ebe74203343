"""The workflow picture of a session, as the admin shows it: SVG from Graphviz, else DOT text.

The SVG is shown as an image (``<img src="data:...">``), where a browser runs
no script, whatever the names in it; the DOT text, when Graphviz is missing,
is shown escaped like any other text.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from triggerhooks import StorageBackend, TriggerhooksError
from triggerhooks.ext import WorkflowGraph, render_image, to_dot

__all__ = ["Picture", "session_picture"]


@dataclass(frozen=True)
class Picture:
    """An SVG as a ``data:`` URI, or the DOT text and why there is no SVG."""

    svg_uri: str = ""
    dot: str = ""
    problem: str = ""


def session_picture(storage: StorageBackend, title: str = "") -> Picture:
    """Draw the session's tasks, coloured by the status of their instances."""
    graph = WorkflowGraph.build(storage.tasks, storage.instances.values(), storage.latest_kwargs,
                                title=title)
    dot = to_dot(graph)
    try:
        svg = render_image(dot, "svg", timeout=20.0)
    except TriggerhooksError as exc:  # Graphviz missing or failing (its GraphvizError)
        return Picture(dot=dot, problem=str(exc))
    return Picture(svg_uri="data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii"))
