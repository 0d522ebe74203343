"""Sessions in memory under a namespace, so related sessions can share a uid space."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from triggerhooks import MemoryStorageBackend
from triggerhooks.ext import JsonDict


class NamespacedMemoryStorage(MemoryStorageBackend):
    """A memory storage whose session uid is ``"<namespace>/<uid>"``.

    ``storage_backends.get("example-namespaced", "42", namespace="tenant-a")``
    or ``open_storage("example-ns://tenant-a", "42")``.
    """

    name = "example-namespaced"
    url_schemes = ("example-ns",)

    def __init__(self, uid: str, namespace: str = "default") -> None:
        if not namespace or "/" in namespace:
            raise ValueError(f"a namespace must be a non-empty string without '/', not {namespace!r}")
        self.namespace = namespace
        self.local_uid = uid
        super().__init__(f"{namespace}/{uid}")

    @classmethod
    def from_url(cls, url: str, uid: str, **options: Any) -> NamespacedMemoryStorage:
        return cls(uid, namespace=urlsplit(url).netloc or "default")

    def reference(self) -> JsonDict:
        return {"backend": self.name, "uid": self.local_uid, "namespace": self.namespace}

    @classmethod
    def from_reference(cls, reference: JsonDict) -> NamespacedMemoryStorage:
        return cls(reference["uid"], namespace=reference["namespace"])
