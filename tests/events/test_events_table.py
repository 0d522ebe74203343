"""The events table of docs/events.md is the one the signals' own metadata makes."""

from __future__ import annotations

from tests.helpers import ROOT
from triggerhooks.events.table import events_markdown
from triggerhooks.signals import SessionPayload, namespace

COMMON = tuple(SessionPayload.__annotations__)


def docs_table() -> str:
    text = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    section = text.split("\n## The signals\n", 1)[1]
    start = section.index("\n| event |") + 1
    return section[start:section.index("\n\n", start)] + "\n"


def test_the_docs_table_is_made_from_the_signals_metadata() -> None:
    made = events_markdown(namespace.values(), leave_out=COMMON)
    assert docs_table() == made, (
        "docs/events.md's table differs from the signals' metadata (triggerhooks/signals.py); "
        "paste this table into the page:\n\n" + made)


def test_every_row_says_who_emits_the_signal_and_when() -> None:
    for row in docs_table().splitlines()[2:]:
        cells = row.strip("|").split(" | ")
        assert len(cells) == 5 and "—" not in (cells[1], cells[2], cells[4]), row
