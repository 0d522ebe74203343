"""The events tests check what is sent, when and to whom: the storage plays no part, so
they run on the memory backend only (a test where it does parametrizes ``backend``), and
every receiver a test connects is disconnected after it."""

from __future__ import annotations

import pytest


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """``memory``, unless the test parametrizes it (indirectly) with other backends."""
    return str(getattr(request, "param", "memory"))


@pytest.fixture(autouse=True)
def _isolated(isolated_signals: None) -> None:
    """Every test here uses ``isolated_signals``."""
