"""What every store backend (SQLite, PostgreSQL) offers beyond the core's storage port.

* **Namespaces.** One server hosts many isolated namespaces (``/ns/<name>/...`` or the
  ``X-DRM-Namespace`` header). Each namespace has its own store: its licenses, caps, devices,
  audit, reports, stream sessions, and its *state documents*. Keys and the catalog are shared.
  ``default`` is the namespace of requests that name none: today's behaviour.
* **State documents.** Small JSON documents a namespace keeps in its store so that every
  worker and replica sees them: the test clock, the fault plans, the revocations and the
  rights overlay. A process caches what it parsed and re-reads when the store's
  ``state_generation`` moves (one cheap read per request).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol, TypeVar

DEFAULT_NAMESPACE = "default"
NAMESPACE_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
"""Lower-case letters, digits and inner hyphens, 1 to 40 characters (safe in paths and schema names)."""

# The documents a namespace keeps (their JSON layouts belong to the modules that own them).
CLOCK_DOCUMENT = "clock"
FAULTS_DOCUMENT = "faults"
REVOCATIONS_DOCUMENT = "revocations"
RIGHTS_DOCUMENT = "rights"
DELETED_DOCUMENT = "deleted"  # set by StoreFactory.delete: the namespace is not listed until it is used again

StoreT = TypeVar("StoreT", covariant=True)


def valid_namespace(name: str) -> bool:
    return bool(NAMESPACE_PATTERN.match(name))


class StateDocuments(Protocol):
    """A namespace's state documents, shared by every process that opens its store."""

    def state_generation(self) -> int:
        """A counter that every document write moves forward (and a reset too)."""

    def document(self, name: str) -> str | None:
        """The document's JSON text, or ``None`` when it was never written (or was deleted)."""

    def update_document(self, name: str, change: Callable[[str | None], str | None]) -> str | None:
        """Atomically replace the document by ``change(current)`` (``None`` deletes it), moving
        the generation; returns what was written. ``change`` may raise to abort, leaving it as it was."""


class NamespaceStore(StateDocuments, Protocol):
    """What the namespace lifecycle needs of a store."""

    def reset_namespace(self) -> None:
        """Empty every table that holds the namespace's data, in one transaction."""


class NamespaceLifecycle:
    """Reset, delete and listing, written once for every :class:`StoreFactory` (each provides ``open``)."""

    def open(self, namespace: str) -> NamespaceStore:
        raise NotImplementedError

    def reset(self, namespace: str) -> None:
        self.open(namespace).reset_namespace()

    def delete(self, namespace: str) -> None:
        if namespace == DEFAULT_NAMESPACE:
            raise ValueError("the default namespace can be reset, never deleted")
        self.reset(namespace)
        self.open(namespace).update_document(DELETED_DOCUMENT, lambda _: '{"deleted": true}')

    def listed(self, namespace: str) -> bool:
        """Is the namespace listed (``default`` always; others unless deleted and not used since)?"""
        return namespace == DEFAULT_NAMESPACE or self.open(namespace).document(DELETED_DOCUMENT) is None


class StoreFactory(Protocol[StoreT]):
    """Opens the store of each namespace; one factory per server process."""

    def open(self, namespace: str) -> StoreT:
        """The namespace's store, created (and migrated) on first use, cached afterwards."""

    def names(self) -> list[str]:
        """The namespaces that exist, ``default`` included, sorted."""

    def reset(self, namespace: str) -> None:
        """Delete everything stored in the namespace (one transaction); it stays listed."""

    def delete(self, namespace: str) -> None:
        """Reset the namespace and stop listing it (``default`` can be reset, never deleted)."""

    def close(self) -> None:
        """Close every store this factory opened."""
