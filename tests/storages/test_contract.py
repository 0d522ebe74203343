"""The storage contract (``triggerhooks.testing.contract``) on every built-in backend.

``make_storage`` comes from tests/conftest.py, parametrized over the built-in
keys of ``storage_backends``; each needs a factory in tests/backends.py.
"""

from __future__ import annotations

from tests.backends import BACKENDS, STORAGE_FACTORIES
from triggerhooks.storages import storage_backends
from triggerhooks.testing.contract import StorageContract


class TestStorageContract(StorageContract):
    """Every test of the contract, once per built-in backend."""


def test_every_built_in_backend_has_a_factory() -> None:
    assert {"memory", "sqlite", "redis"} <= set(BACKENDS)
    assert set(BACKENDS) <= {str(key) for key in storage_backends}
    missing = [key for key in BACKENDS if key not in STORAGE_FACTORIES]
    assert missing == [], f"built-in storage backends without a factory in tests/backends.py: {missing}"
