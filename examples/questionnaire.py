"""The questionnaire workflow from the introduction, on in-process memory storage."""

from __future__ import annotations

from typing import Any

from triggerhooks import MemoryStorageBackend, TriggerManager, on, trigger_task
from triggerhooks.signals import session_finalized, task_completed
from triggerhooks.task import TaskContext


@trigger_task(name="example.import_subject")
def import_subject(context: TaskContext) -> dict[str, Any]:
    page = context.trigger_kwargs["firstPageReceived"]["responses"]
    return {"subjectId": 42, "name": page["givenNames"]}


@trigger_task(name="example.import_responses")
def import_responses(context: TaskContext) -> dict[str, Any]:
    return {"imported": len(context.trigger_kwargs["pageReceived"]["responses"])}


@on(task_completed)
def report(sender: Any, task_instance: Any, result: Any, **kwargs: Any) -> None:
    print(f"  {task_instance.name:<22} finished -> {result}")


@on(session_finalized)
def finalized(sender: Any, session_uid: str, **kwargs: Any) -> None:
    print(f"  session {session_uid} finalized")


def main() -> None:
    manager = TriggerManager(MemoryStorageBackend(uid="questionnaire-42"))
    manager.update_configuration({
        "t_importSubject": {"after": ["firstPageReceived", "questionnaireComplete"],
                            "run": "example.import_subject"},
        "t_importResponses": {"after": ["t_importSubject"], "andEvery": "pageReceived",
                              "run": "example.import_responses"},
    })
    pages = [{"givenNames": "Ada"}, {"q1": "yes", "q2": "no"}]
    manager.fire("firstPageReceived", {"responses": pages[0]})
    for page in pages:
        print(f"fire pageReceived {page}")
        manager.fire("pageReceived", {"responses": page})
    print("fire questionnaireComplete")
    manager.fire("questionnaireComplete")
    for instance in manager.storage:
        print(f"{instance.name:<22} {instance.status.value}")


if __name__ == "__main__":
    main()
