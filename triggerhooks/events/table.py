"""The events table, as Caluma's docs carry one: for each event, what emits it, the
arguments it passes and when it is sent relative to the others.

Made from the events' own metadata (:class:`~triggerhooks.signals.OrderedSignal`),
for triggerhooks' signals and declared events alike: as JSON
(:func:`event_json`) and as a Markdown table (:func:`events_markdown`) to put
in an application's docs. ``triggerhooks events`` prints it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..serialization import JsonDict
from ..signals import EventArgument, OrderedSignal
from .declaring import known_events

__all__ = ["HEADER", "argument_text", "event_json", "events_markdown", "first_line"]

HEADER = ("event", "payload", "emitted by", "arguments", "order")
"""The columns of the Markdown table."""

_NONE = "—"


def _doc(signal: OrderedSignal) -> str:
    """The signal's own doc (an undocumented one shows its class's)."""
    doc = signal.__doc__
    return "" if not doc or doc == type(signal).__doc__ else doc.strip()


def first_line(signal: OrderedSignal) -> str:
    """The first line of the event's doc (``""`` without one)."""
    return _doc(signal).split("\n", 1)[0]


def argument_text(argument: EventArgument) -> str:
    """One argument in Markdown: `` `name` (description)``."""
    return f"`{argument.name}`" + (f" ({argument.description})" if argument.description else "")


def event_json(signal: OrderedSignal) -> JsonDict:
    """Everything the table says of one event, as JSON (``doc`` in full)."""
    return {
        "name": signal.name,
        "doc": _doc(signal),
        "payload": signal.payload.__name__ if signal.payload is not None else None,
        "sender": signal.sender_kind,
        "emitted_by": signal.emitted_by,
        "arguments": [{"name": each.name, "type": each.type, "description": each.description,
                       "required": each.required} for each in signal.arguments],
        "order": signal.order,
        "declared_in": signal.declared_in,
    }


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or _NONE


def events_markdown(signals: Iterable[OrderedSignal] | None = None, *,
                    leave_out: Iterable[str] = ()) -> str:
    """The events table in Markdown (default: every known event), one row per event.

    ``leave_out`` names arguments not to list (docs/events.md leaves out
    ``manager`` and ``session_uid``, which every triggerhooks signal passes).
    """
    skipped = set(leave_out)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    for signal in known_events() if signals is None else signals:
        arguments = ", ".join(argument_text(each) for each in signal.arguments
                              if each.name not in skipped)
        payload = f"`{signal.payload.__name__}`" if signal.payload is not None else ""
        cells = [f"`{signal.name}`", payload, signal.emitted_by, arguments, signal.order]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"
