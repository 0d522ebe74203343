"""``triggerhooks why``: an :class:`~triggerhooks.core.explain.Explanation` as a tree."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.text import Text
from rich.tree import Tree

from ..core.explain import Explanation, TriggerFact
from .render import STATUS_STYLES

__all__ = ["explanation_tree"]

_STATE_STYLES = {**STATUS_STYLES, "waiting": "yellow", "ready": "cyan", "vetoed": "dim",
                 "blocked": "dim", "unknown": "red"}


def _time(stamp: str | None) -> str:
    return f" (first at {stamp[:19].replace('T', ' ')} UTC)" if stamp else ""


def _label(found: Explanation) -> Text:
    return Text.assemble((found.task, "bold"), " — ",
                         (found.state, _STATE_STYLES.get(found.state, "")),
                         f": {found.summary}")


def _grow(tree: Tree, found: Explanation) -> None:
    for each in found.instances:
        style = STATUS_STYLES.get(each.status, "")
        tree.add(Text.assemble((each.name, "bold"), " ", (each.status, style), f": {each.detail}"))
    for fact in found.after:
        _trigger(tree, fact, "after")
    for fact in found.unless:
        mark = "fired" if fact.fired else "not fired"
        tree.add(Text(f"unless {fact.trigger!r}: {mark}{_time(fact.fired_at)}", style="dim"))


def _trigger(tree: Tree, fact: TriggerFact, kind: str) -> None:
    if fact.fired:
        tree.add(Text.assemble(("✓ ", "green"), f"{kind} {fact.trigger!r} fired",
                               (_time(fact.fired_at), "dim")))
        return
    if fact.upstream is None:
        tree.add(Text.assemble(("✗ ", "red"), f"{kind} {fact.trigger!r} never fired"))
        return
    branch = tree.add(Text.assemble(("✗ ", "red"), f"{kind} {fact.trigger!r} (a task) not "
                                    "finished: ", _label(fact.upstream)))
    _grow(branch, fact.upstream)


def explanation_tree(found: Explanation) -> RenderableType:
    """The explanation as a tree, then its root causes."""
    tree = Tree(_label(found), guide_style="dim")
    _grow(tree, found)
    causes = found.root_causes
    if not causes:
        return tree
    lines = Text("\nroot causes:", style="bold")
    for cause in causes:
        lines.append(f"\n  • {escape(cause)}", style="")
    return Group(tree, lines)
