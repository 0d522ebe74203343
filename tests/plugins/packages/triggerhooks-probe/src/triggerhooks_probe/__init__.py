"""A runner whose registration hook counts its calls.

With ``hold = True`` the hook signals ``entered`` and waits for ``release``,
so a test can start other threads while the first load is in progress.
With ``PROBE_LOOKUP_ON_IMPORT=1`` in the environment, importing this module
looks a runner up, as a plugin module might: a registry used while the plugins
are still being loaded.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from triggerhooks import InlineTaskRunner, task_runners
from triggerhooks.ext import hookimpl

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


looked_up_on_import = (task_runners.get_class("inline").__name__
                       if os.environ.get("PROBE_LOOKUP_ON_IMPORT") else None)
