"""What a SQL backend gives :class:`~license_server.store_sql.SqlStore`, and the SQLite one.

The store's decisions (caps, replay keys, tokens, reports, documents) are written once in
portable SQL with ``?`` placeholders. A backend runs them: it owns connections and
transactions, the cross-process locking a decision needs, and the few dialect details
(index hints, ``FOR UPDATE``). :class:`SqliteBackend` is the embedded one; the PostgreSQL
backend lives in :mod:`license_server.store_pg`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import sqlite_utils

from license_server.sqlite_support import WriteTurn, transaction


class Rows(Protocol):
    """What ``execute`` returns: a DB-API cursor, or the rows a backend already fetched."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class SqlBackend(Protocol):
    """Connections, transactions, locking and dialect details of one store."""

    for_update: str
    """Appended to a ``SELECT`` of one row that a transaction is about to change (``" FOR UPDATE"``, or empty)."""

    join_in_order: str
    """A join keyword that keeps the tables in the written order (SQLite's ``CROSS JOIN``), or ``JOIN``."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        """Run one statement (``?`` placeholders), in the open transaction if any."""

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def transaction(self) -> AbstractContextManager[None]:
        """One atomic unit, rolled back on any exception."""

    def serialize(self, *keys: str) -> None:
        """Inside a transaction: wait until no other transaction holds any of ``keys``, hold them to the end."""

    def try_serialize(self, key: str) -> bool:
        """Like :meth:`serialize` for one key, without waiting: False if another transaction holds it."""

    def hint(self, index: str) -> str:
        """An index hint to put after a table name (``" INDEXED BY x"``), or empty."""

    def unindexed(self, column: str) -> str:
        """``column`` written so that the planner will not serve it from an index."""

    def close(self) -> None: ...


def dicts(rows: Rows) -> list[dict[str, Any]]:
    """The rows as dictionaries keyed by column name."""
    names = [column[0] for column in rows.description]
    return [dict(zip(names, row)) for row in rows.fetchall()]


class SqliteBackend:
    """One SQLite connection (sqlite-utils, WAL). Every write transaction is ``BEGIN IMMEDIATE``, which
    serializes writers across processes, so :meth:`serialize` has nothing left to do."""

    for_update = ""
    join_in_order = "CROSS JOIN"

    def __init__(self, db: sqlite_utils.Database, turn: WriteTurn | None = None,
                 committed: Callable[[], None] | None = None) -> None:
        self.db = db
        self.turn = turn  # taken around every write transaction (file stores)
        self.committed = committed  # told after every commit (the background checkpointer's mark)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self.db.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.db.conn.executemany(sql, rows)

    def transaction(self) -> AbstractContextManager[None]:
        return transaction(self.db, self.turn, self.committed)

    def serialize(self, *keys: str) -> None:
        return None

    def try_serialize(self, key: str) -> bool:
        return True

    def hint(self, index: str) -> str:
        return f" INDEXED BY {index}"

    def unindexed(self, column: str) -> str:
        return f"+{column}"

    def close(self) -> None:
        self.db.conn.close()
        if self.turn is not None:
            self.turn.close()
