"""The storage contract of triggerhooks, run on the plugin's backend as any backend's author would."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from triggerhooks_example import NamespacedMemoryStorage

from triggerhooks.testing.contract import StorageContract, StorageFactory, storage_factory


class TestNamespacedMemoryStorage(StorageContract):
    @pytest.fixture
    def make_storage(self) -> Iterator[StorageFactory]:
        namespace = f"contract-{uuid.uuid4().hex[:8]}"
        with storage_factory(lambda uid: NamespacedMemoryStorage(uid, namespace=namespace)) as make:
            yield make
