"""A namespace's state documents in its SQLite store (see :mod:`license_server.store_api`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import sqlite_utils

from license_server.clock import wall_clock_now
from license_server.store_schema import RESET_TABLES


class SqliteStateDocuments:
    """Mixed into :class:`~license_server.store.Store`: documents, their generation, and the reset."""

    db: sqlite_utils.Database

    def transaction(self) -> AbstractContextManager[None]:  # provided by Store
        raise NotImplementedError

    def state_generation(self) -> int:
        return int(self.db.execute("SELECT value FROM state_generation WHERE id = 1").fetchone()[0])

    def document(self, name: str) -> str | None:
        row = self.db.execute("SELECT body FROM state_documents WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def update_document(self, name: str, change: Callable[[str | None], str | None]) -> str | None:
        with self.transaction():
            body = change(self.document(name))
            if body is None:
                self.db.execute("DELETE FROM state_documents WHERE name = ?", (name,))
            else:
                self.db.execute(
                    "INSERT INTO state_documents VALUES (?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                    (name, body, wall_clock_now()),
                )
            self.db.execute("UPDATE state_generation SET value = value + 1 WHERE id = 1")
        return body

    def reset_namespace(self) -> None:
        """Empty every table that holds the namespace's data, in one transaction; the generation moves
        so that other processes drop what they cached."""
        with self.transaction():
            for table in RESET_TABLES:
                self.db.execute(f"DELETE FROM {table}")  # table names come from a constant tuple
            self.db.execute("UPDATE state_generation SET value = value + 1 WHERE id = 1")
