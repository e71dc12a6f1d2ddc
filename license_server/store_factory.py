"""One SQLite store per namespace under the data directory (see :mod:`license_server.store_api`).

``default`` keeps today's file, ``<data_dir>/license-server.db``; namespace ``x`` lives in
``<data_dir>/namespaces/x/license-server.db``. A reset empties the tables rather than removing
the file, so that the other workers' open connections stay valid; a delete resets and marks the
namespace as unlisted (its file stays, empty, until the namespace is used again). With
``default_path`` (``--store sqlite:///FILE``) the default namespace is that file and the others
live beside it, in ``<FILE's directory>/namespaces/``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from license_server.store import Store
from license_server.store_api import DEFAULT_NAMESPACE, NamespaceLifecycle, valid_namespace

DATABASE_NAME = "license-server.db"
NAMESPACES_DIR = "namespaces"

OpenStore = Callable[[Path], Store]


class SqliteStores(NamespaceLifecycle):
    """Opens and caches the SQLite store of each namespace for this process."""

    def __init__(self, data_dir: Path, *, open_store: OpenStore = Store.open, default_path: Path | None = None) -> None:
        self.data_dir = data_dir
        self.default_path = default_path or data_dir / DATABASE_NAME
        self._open_store = open_store
        self._stores: dict[str, Store] = {}
        self._lock = threading.Lock()

    def path(self, namespace: str) -> Path:
        """Where the namespace's database file lives."""
        if namespace == DEFAULT_NAMESPACE:
            return self.default_path
        return self.data_dir / NAMESPACES_DIR / namespace / DATABASE_NAME

    def open(self, namespace: str) -> Store:
        store = self._stores.get(namespace)
        if store is not None:
            return store
        if not valid_namespace(namespace):
            raise ValueError(f"not a namespace name: {namespace!r}")
        with self._lock:
            store = self._stores.get(namespace)
            if store is None:
                path = self.path(namespace)
                path.parent.mkdir(parents=True, exist_ok=True)
                store = self._stores[namespace] = self._open_store(path)
        return store

    def names(self) -> list[str]:
        root = self.data_dir / NAMESPACES_DIR
        found = [entry.name for entry in root.iterdir() if valid_namespace(entry.name)] if root.is_dir() else []
        present = (name for name in found if self.path(name).exists())
        return sorted({DEFAULT_NAMESPACE, *(name for name in present if self.listed(name))})

    def close(self) -> None:
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()

