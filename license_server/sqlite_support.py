"""SQLite plumbing shared by the server store and the device's license store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils


def connect(path: Path | str, *, synchronous: str) -> sqlite_utils.Database:
    """Open ``path`` (``":memory:"`` for tests) in autocommit mode, WAL on disk."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    if str(path) != ":memory:":
        db.enable_wal()
        conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    return db


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """An explicit ``BEGIN IMMEDIATE`` transaction, rolled back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextmanager
def savepoint(db: sqlite_utils.Database) -> Iterator[None]:
    """A nested atomic unit inside an open transaction: on any exception only its own writes are undone."""
    db.execute("SAVEPOINT unit")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK TO unit")
        db.execute("RELEASE unit")
        raise
    db.execute("RELEASE unit")


def migrate(db: sqlite_utils.Database, migrations: tuple[str, ...]) -> None:
    """Apply the migrations past ``PRAGMA user_version``, each in its own transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(migrations[version:], start=version + 1):
        with transaction(db):
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={number}")
