"""A runner whose registration hook counts its calls.

With ``hold = True`` the hook signals ``entered`` and waits for ``release``,
so a test can start other threads while the first load is in progress.
"""

from __future__ import annotations

import threading
from typing import Any

from triggerhooks import InlineTaskRunner
from triggerhooks.plugins import hookimpl

calls = 0
hold = False
entered = threading.Event()
release = threading.Event()


class ProbeRunner(InlineTaskRunner):
    name = "probe"


@hookimpl
def triggerhooks_register_runners(registry: Any) -> None:
    global calls
    calls += 1
    if hold:
        entered.set()
        if not release.wait(timeout=30):
            raise TimeoutError("the test never released the probe")
    registry.register(ProbeRunner)
