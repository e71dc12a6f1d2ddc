"""A namespace's state documents in its store, for every SQL backend (see :mod:`license_server.store_api`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from license_server.clock import wall_clock_now
from license_server.store_schema import RESET_TABLES

if TYPE_CHECKING:
    from license_server.store_backend import SqlBackend


class SqlStateDocuments:
    """Mixed into :class:`~license_server.store_sql.SqlStore`: documents, their generation, and the reset."""

    sql: SqlBackend

    def transaction(self) -> AbstractContextManager[None]:  # provided by SqlStore
        raise NotImplementedError

    def state_generation(self) -> int:
        return int(self.sql.execute("SELECT value FROM state_generation WHERE id = 1").fetchone()[0])

    def document(self, name: str) -> str | None:
        row = self.sql.execute("SELECT body FROM state_documents WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def update_document(self, name: str, change: Callable[[str | None], str | None]) -> str | None:
        with self.transaction():
            # The generation row is updated first: it locks the namespace's documents for this read-modify-write.
            self.sql.execute("UPDATE state_generation SET value = value + 1 WHERE id = 1")
            body = change(self.document(name))
            if body is None:
                self.sql.execute("DELETE FROM state_documents WHERE name = ?", (name,))
            else:
                self.sql.execute(
                    "INSERT INTO state_documents VALUES (?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                    (name, body, wall_clock_now()),
                )
        return body

    def reset_namespace(self) -> None:
        """Empty every table that holds the namespace's data, in one transaction; the generation moves
        so that other processes drop what they cached."""
        with self.transaction():
            self.sql.execute("UPDATE state_generation SET value = value + 1 WHERE id = 1")
            for table in RESET_TABLES:
                self.sql.execute(f"DELETE FROM {table}")  # table names come from a constant tuple


SqliteStateDocuments = SqlStateDocuments  # the name it had when only SQLite kept documents
