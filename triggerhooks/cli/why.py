"""``triggerhooks why``: an :class:`~triggerhooks.core.explain.Explanation` as a tree."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.text import Text
from rich.tree import Tree

from ..core.explain import NESTED, Explanation, TriggerFact
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


def _grow(tree: Tree, top: Explanation, nested: int = NESTED) -> None:
    """Add ``top``'s instances, triggers and upstream explanations under ``tree``, without
    recursion: each task in full where it first appears, shortened where it appears again
    or lies more than ``nested`` tasks deep (the root causes list what lies there)."""
    seen = {id(top)}
    stack = [(tree, top, 0)]
    while stack:
        branch, found, depth = stack.pop()
        for each in found.instances:
            style = STATUS_STYLES.get(each.status, "")
            branch.add(Text.assemble((each.name, "bold"), " ", (each.status, style),
                                     f": {each.detail}"))
        later = []
        for fact in found.after:
            child = _trigger(branch, fact, "after")
            if child is None or fact.upstream is None:
                continue
            upstream = fact.upstream
            if id(upstream) in seen:
                if upstream.upstreams() or upstream.instances:
                    child.add(Text("explained in another branch", style="dim"))
            elif depth + 1 > nested and upstream.upstreams():
                child.add(Text("… deeper: see the root causes", style="dim"))
            else:
                seen.add(id(upstream))
                later.append((child, upstream, depth + 1))
        for fact in found.unless:
            mark = "fired" if fact.fired else "not fired"
            branch.add(Text(f"unless {fact.trigger!r}: {mark}{_time(fact.fired_at)}", style="dim"))
        stack += reversed(later)


def _trigger(tree: Tree, fact: TriggerFact, kind: str) -> Tree | None:
    """The line of one trigger; the branch under which its upstream task goes, if any."""
    if fact.fired:
        tree.add(Text.assemble(("✓ ", "green"), f"{kind} {fact.trigger!r} fired",
                               (_time(fact.fired_at), "dim")))
        return None
    if fact.upstream is None:
        tree.add(Text.assemble(("✗ ", "red"), f"{kind} {fact.trigger!r} never fired"))
        return None
    return tree.add(Text.assemble(("✗ ", "red"), f"{kind} {fact.trigger!r} (a task) not "
                                  "finished: ", _label(fact.upstream)))


class _ExplanationTree:
    """The tree, nested as deep as the console's width leaves each line room for its text
    (rich indents each level by four columns), then the root causes."""

    def __init__(self, found: Explanation) -> None:
        self.found = found

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        found = self.found
        tree = Tree(_label(found), guide_style="dim")
        _grow(tree, found, max(1, min(NESTED, (options.max_width - 40) // 4)))
        causes = found.root_causes
        if not causes:
            yield tree
            return
        lines = Text("\nroot causes:", style="bold")
        for cause in causes:
            lines.append(f"\n  • {cause}", style="")
        yield Group(tree, lines)


def explanation_tree(found: Explanation) -> RenderableType:
    """The explanation as a tree, then its root causes."""
    return _ExplanationTree(found)
