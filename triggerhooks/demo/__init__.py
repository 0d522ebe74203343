"""The questionnaire demo: the workflow of the introduction, run by ``triggerhooks demo``.

A questionnaire application fires ``firstPageReceived`` and ``pageReceived``
as pages arrive and ``questionnaireComplete`` at the end. The subject is
imported once the first page is in and the questionnaire is complete; the
responses of every page after that; browser metadata unless the
questionnaire is embedded; and a finalization task runs once everything
else is resolved. The tasks are importable (``--import triggerhooks.demo``)
so other processes can go on with a demo session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.resources import files
from typing import Any

from ..manager import TriggerManager
from ..runners import ThreadingTaskRunner
from ..task import TaskContext, TriggerTask
from ..workflow import parse_workflow, validate_workflow

__all__ = [
    "PAGES",
    "FinalizeSession",
    "ImportBrowserMetadata",
    "ImportResponses",
    "ImportSubject",
    "run_questionnaire",
    "workflow_text",
]

WORKFLOW_FILE = "questionnaire.toml"

PAGES: list[dict[str, Any]] = [
    {"givenNames": "Ada", "familyName": "Lovelace", "favouriteNumber": "7"},
    {"q1": "often", "q2": "never", "q3": "sometimes"},
    {"q4": "yes", "q5": "no"},
]
"""The responses on each page of the demo questionnaire."""

BROWSER = {"userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "language": "en-GB"}


def workflow_text() -> str:
    """The demo workflow (TOML), as shipped with the package."""
    return files(__package__).joinpath(WORKFLOW_FILE).read_text(encoding="utf-8")


def workflow() -> dict[str, Any]:
    """The demo workflow as a mapping, checked like any workflow file."""
    doc = parse_workflow(workflow_text(), "toml", WORKFLOW_FILE)
    validate_workflow(doc)
    return dict(doc.data)


class ImportSubject(TriggerTask):
    """Creates the subject from the first page; warns when the email address is missing."""

    name = "triggerhooks.demo.ImportSubject"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        with context.get_logger_context({"step": "import subject"}) as logger:
            page = context.trigger_kwargs["firstPageReceived"]["responses"]
            if not page.get("email"):
                logger.warning("no email address on the first page",
                               extra={"context": {"page": page}})
            return {"subjectId": 42, "name": f"{page['givenNames']} {page['familyName']}"}


class ImportResponses(TriggerTask):
    """Stores the responses of one page for the imported subject."""

    name = "triggerhooks.demo.ImportResponses"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        page = context.trigger_kwargs["pageReceived"]
        subject = context.trigger_kwargs["t_importSubject"]["subjectId"]
        return {"subjectId": subject, "page": page["page"], "answers": len(page["responses"])}


class ImportBrowserMetadata(TriggerTask):
    """Records the browser the subject used, scored with the ``withParams`` model."""

    name = "triggerhooks.demo.ImportBrowserMetadata"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        browser = context.trigger_kwargs["pageReceived"]["browser"]
        model = context.trigger_kwargs["scoring"]["model"]
        return {"browser": browser["userAgent"].rpartition(" ")[2], "scoringModel": model}


class FinalizeSession(TriggerTask):
    """Runs after ``sessionFinalized``: sums up what the session imported."""

    name = "triggerhooks.demo.FinalizeSession"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        storage = context.manager.storage
        pages = [i for i in storage.instances_of_task("t_importResponses") if i.status == "finished"]
        warnings = storage.get_instances_with_unresolved_logs(logging.WARNING)
        return {"pagesImported": len(pages), "instancesWithWarnings": len(warnings)}


def run_questionnaire(manager: TriggerManager, *, embedded: bool = False,
                      announce: Callable[[str, dict[str, Any]], None] | None = None) -> None:
    """Configure ``manager``'s session with the demo workflow and fire what a
    questionnaire application would, calling ``announce(trigger, kwargs)`` before each fire.

    Tasks with ``using = "threading"`` are waited for before this returns.
    """

    def fire(trigger: str, kwargs: dict[str, Any] | None = None) -> None:
        if announce is not None:
            announce(trigger, kwargs or {})
        manager.fire(trigger, kwargs)
        ThreadingTaskRunner.join_all()

    manager.update_configuration(workflow())
    if embedded:
        fire("isEmbeddedApplication")
    fire("firstPageReceived", {"responses": PAGES[0]})
    for number, responses in enumerate(PAGES, start=1):
        fire("pageReceived", {"page": number, "responses": responses, "browser": BROWSER})
    fire("questionnaireComplete")
