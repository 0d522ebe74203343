"""The plugin's own event, declared when triggerhooks imports the plugin's receiver module
(``receivers.py`` imports this one), so that ``triggerhooks events`` lists it."""

from __future__ import annotations

from triggerhooks import declare_event

greeted = declare_event(
    "triggerhooks_example.greeted", {"greeting": "what the guest was told"},
    doc="A guest was greeted.",
    emitted_by="`remember_greeting`, the plugin's receiver of `task_completed` for `Greet`",
    order="right after the `task_completed` of the `Greet` instance",
)
"""Sent by the ``Greet`` task class, once per greeting."""
