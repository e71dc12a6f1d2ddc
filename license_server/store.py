"""The server's embedded repository: :class:`~license_server.store_sql.SqlStore` over SQLite, in WAL mode.

The decisions live in :mod:`license_server.store_sql` (shared with PostgreSQL); this module opens
the file, runs :data:`~license_server.store_schema.MIGRATIONS` and turns a write into a savepoint
inside a group-commit batch (:mod:`license_server.store_writer`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import sqlite_utils

from license_server.core.ports import Holder, LicenseRecord
from license_server.sqlite_checkpoint import CHECKPOINTER, CheckpointHandle
from license_server.sqlite_support import WriteTurn, connect, connect_server_store, migrate, savepoint
from license_server.store_backend import SqliteBackend
from license_server.store_schema import MIGRATIONS
from license_server.store_sql import (
    LICENSE_FILTERS,
    LICENSE_SUMMARY,
    REPLAY_RETENTION,
    TOKEN_RETENTION_SLACK,
    AuditRetention,
    SqlStore,
)

__all__ = ["LICENSE_FILTERS", "LICENSE_SUMMARY", "REPLAY_RETENTION", "TOKEN_RETENTION_SLACK", "AuditRetention",
           "Holder", "LicenseRecord", "SqlStore", "Store"]


class Store(SqlStore):
    """The SQLite store of one namespace (one database file, or ``:memory:``)."""

    def __init__(self, db: sqlite_utils.Database, *, retention: AuditRetention | None = None,
                 checkpoint: CheckpointHandle | None = None, turn: WriteTurn | None = None) -> None:
        super().__init__(SqliteBackend(db, turn, checkpoint.written if checkpoint else None), retention=retention)
        self.db = db
        self.checkpoint = checkpoint
        self.in_batch = False  # set by the group-commit writer around a batch
        migrate(self.db, MIGRATIONS)
        self.fill_slot_ends()

    @classmethod
    def open(cls, path: Path | str, *, retention: AuditRetention | None = None, synchronous: str = "NORMAL") -> Store:
        """Open (creating if needed) the store at ``path``; ``":memory:"`` for tests. A file store is
        checkpointed in the background (:mod:`license_server.sqlite_checkpoint`), never inside a request."""
        if str(path) == ":memory:":
            return cls(connect(path, synchronous="NORMAL"), retention=retention)
        db = connect_server_store(path, synchronous=synchronous)
        return cls(db, retention=retention, checkpoint=CHECKPOINTER.register(path), turn=WriteTurn(path))

    def close(self) -> None:
        if self.checkpoint is not None:
            CHECKPOINTER.unregister(self.checkpoint)
        super().close()

    @classmethod
    def memory(cls) -> Store:
        return cls.open(":memory:")

    def transaction(self) -> AbstractContextManager[None]:
        """One atomic write: a transaction, or a savepoint inside a group-commit batch (:mod:`store_writer`)."""
        return savepoint(self.db) if self.in_batch else super().transaction()

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])
