"""The ``celery`` task runner: trigger task instances become Celery messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from triggerhooks import RunnerError
from triggerhooks.ext import TaskRunner, session_reference

from .settings import EXECUTE_TASK, RECEIVER_TASK

if TYPE_CHECKING:
    from celery import Celery

    from triggerhooks import TriggerManager
    from triggerhooks.ext import BackgroundCall

__all__ = ["BrokerUnavailableError", "CeleryTaskRunner", "EagerModeError"]


class EagerModeError(RunnerError):
    """The Celery app has ``task_always_eager`` set: the task would run inside ``fire()``."""


class BrokerUnavailableError(RunnerError):
    """A message could not be sent: the broker is down or refused it.

    Raised after the change that scheduled the instance was stored
    (``committed`` is true, ``scheduled`` names the instances): the instance
    stays ``scheduled`` until a recovery hands it off again — do not fire again
    to repair it (without a key, that would store the firing twice).
    """


class CeleryTaskRunner(TaskRunner):
    """Sends each scheduled instance to the Celery workers as one JSON message.

    The message is ``{"session": <session reference>, "instance": "<task>#<n>"}``
    for the Celery task ``triggerhooks.execute``; a ``countdown`` (a retry's
    cooldown) becomes the message's Celery countdown. Background receivers go
    as ``triggerhooks.receive``. Celery is imported on first use only.
    """

    name = "celery"

    @staticmethod
    def app() -> Celery:
        """The app messages go to (:func:`triggerhooks_celery.install`, else the default)."""
        from .apps import get_app

        app = get_app()
        if app.conf.task_always_eager:
            raise EagerModeError(
                f"Celery app {app.main!r} has task_always_eager set: the celery runner would run "
                "every task inside fire(). Unset it, or give the manager the inline runner "
                "(TriggerManager(storage, task_runner='inline')) to run tasks in-process")
        return app

    def _send(self, task: str, payload: dict[str, Any], countdown: float = 0.0) -> None:
        from kombu.exceptions import KombuError

        app = self.app()
        try:
            app.send_task(task, args=(payload,), countdown=countdown if countdown > 0 else None,
                          serializer="json")
        except (KombuError, OSError) as exc:
            what = payload.get("instance") or "a background receiver call"
            raise BrokerUnavailableError(
                f"the message for {what} could not be sent to the Celery broker "
                f"({type(exc).__name__}: {exc}); it stays scheduled until a recovery "
                "(triggerhooks recover) sends it again") from exc

    def schedule(self, manager: TriggerManager, instance_name: str, countdown: float = 0.0) -> None:
        self._send(EXECUTE_TASK, {"session": session_reference(manager), "instance": instance_name},
                   countdown)

    def schedule_receiver(self, manager: TriggerManager, call: BackgroundCall) -> None:
        self._send(RECEIVER_TASK, {"session": session_reference(manager), "call": call.to_json()})
