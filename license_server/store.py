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
from license_server.sqlite_support import WriteTurn, connect, connect_server_store, migrate, prewarm, savepoint
from license_server.store_backend import SqliteBackend
from license_server.store_schema import MIGRATIONS
from license_server.store_sql import (
    LICENSE_FILTERS,
    LICENSE_SUMMARY,
    REPLAY_RETENTION,
    SLOT_HOLDING,
    TOKEN_RETENTION_SLACK,
    AuditRetention,
    SqlStore,
)

__all__ = ["LICENSE_FILTERS", "LICENSE_SUMMARY", "REPLAY_RETENTION", "TOKEN_RETENTION_SLACK", "AuditRetention",
           "Holder", "LicenseRecord", "SqlStore", "Store"]


PREWARM_SECONDS = 2.0
"""How long a starting server may spend on :meth:`Store.prewarm` by default (``serve --prewarm``)."""

PREWARM_READS = (
    # the indexes keyed by device or account, into which every grant writes at its holder's position
    "SELECT COUNT(*) FROM licenses INDEXED BY licenses_device WHERE device_id >= ''",
    "SELECT COUNT(*) FROM licenses INDEXED BY licenses_account WHERE account >= ''",
    f"SELECT COUNT(*) FROM licenses INDEXED BY licenses_slots_device WHERE device_id >= '' AND {SLOT_HOLDING}",
    f"SELECT COUNT(*) FROM licenses INDEXED BY licenses_slots_account WHERE account >= '' AND {SLOT_HOLDING}",
    # the device rows a grant updates, the monthly counters it bumps, the replay keys it claims
    "SELECT COUNT(*) FROM devices WHERE device_id >= ''",
    "SELECT COUNT(last_seen) FROM devices NOT INDEXED",
    "SELECT COUNT(grants) FROM monthly_grants",
    "SELECT COUNT(*) FROM seen_requests WHERE request_key >= ''",
)
"""What :meth:`Store.prewarm` reads, most used first; each is served from the structure it names
(``tests/test_store_prewarm.py`` checks the plans)."""


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

    def prewarm(self, seconds: float) -> int:
        """Read what grants write at their holder's position (:data:`PREWARM_READS`) into the page cache,
        for at most ``seconds``, so that a holder's first grant after start-up reads no page from the file.
        Returns how many of the reads completed."""
        return prewarm(self.db.conn, PREWARM_READS, seconds=seconds)

    @classmethod
    def memory(cls) -> Store:
        return cls.open(":memory:")

    def transaction(self) -> AbstractContextManager[None]:
        """One atomic write: a transaction, or a savepoint inside a group-commit batch (:mod:`store_writer`)."""
        return savepoint(self.db) if self.in_batch else super().transaction()

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])
