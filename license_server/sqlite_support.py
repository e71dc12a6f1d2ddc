"""SQLite plumbing shared by the server store and the device's license store."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import sqlite_utils

SERVER_CACHE_KIB = 256 * 1024
"""Page cache of a server store's connection: a million-license store's interior pages and the
index pages keyed by device or account (about 100 MiB) stay in memory once read (SQLite's default
is 2 MiB; pages are allocated as they are read, so a small store uses little). docs/store.md has
the measurements."""


def connect(path: Path | str, *, synchronous: str, autocheckpoint: bool = True,
            cache_kib: int | None = None) -> sqlite_utils.Database:
    """Open ``path`` (``":memory:"`` for tests) in autocommit mode, WAL on disk.

    ``autocheckpoint=False``: no checkpoint inside a commit; the caller registers the file
    with :mod:`license_server.sqlite_checkpoint`, which checkpoints it in the background.
    ``cache_kib``: the connection's page cache, in KiB.
    """
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    conn.execute("PRAGMA busy_timeout=5000")  # first: switching a new file to WAL waits for its lock too
    if str(path) != ":memory:":
        switch_to_wal(conn)
        conn.execute(f"PRAGMA synchronous={synchronous}")
        if not autocheckpoint:
            conn.execute("PRAGMA wal_autocheckpoint=0")
    if cache_kib is not None:
        conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    return db


WAL_SWITCH_SECONDS = 5.0


def switch_to_wal(conn: sqlite3.Connection, *, seconds: float = WAL_SWITCH_SECONDS) -> None:
    """Put the file in WAL mode, retrying for up to ``seconds`` while it is locked.

    When several processes open one new file at once, SQLite can answer ``journal_mode=WAL``
    "database is locked" at once, without waiting in its busy handler (seen once in about 100
    openings by four processes). A switch that did not take, with the mode still something
    else, is retried in the same way.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal" or \
                    conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                return
            failure: sqlite3.OperationalError = sqlite3.OperationalError("the file did not switch to WAL mode")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            failure = exc
        if time.monotonic() >= deadline:
            raise failure
        time.sleep(0.01)


class WriteTurn:
    """Whose turn it is to write one database file, across threads and processes: an exclusive
    ``flock`` on a sidecar file (``FILE-writer``), taken before ``BEGIN IMMEDIATE``.

    SQLite alone makes a writer that finds the file locked sleep 1, 2, 5, 10... ms and retry; a
    writer queued on the ``flock`` is woken by the kernel the moment the holder commits. The lock
    dies with its process, so ``kill -9`` never leaves it held. Writers that do not take it (a
    migration, another tool) still meet SQLite's lock and ``busy_timeout`` as before.
    """

    def __init__(self, path: Path | str) -> None:
        self._fd = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


def connect_server_store(path: Path | str, *, synchronous: str) -> sqlite_utils.Database:
    """A server store's connection: checkpoints left to the background checkpointer, a larger page cache."""
    return connect(path, synchronous=synchronous, autocheckpoint=False, cache_kib=SERVER_CACHE_KIB)


def prewarm(conn: sqlite3.Connection, reads: Iterable[str], *, seconds: float) -> int:
    """Run ``reads`` in order, so that the pages they visit are in ``conn``'s page cache, and stop at
    ``seconds`` (a read cut off there is interrupted). Returns how many reads ran to the end."""
    deadline = time.monotonic() + seconds
    done = 0
    conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)  # checked every 10,000 steps
    try:
        for sql in reads:
            if time.monotonic() > deadline:
                break
            try:
                conn.execute(sql).fetchall()
            except sqlite3.OperationalError:  # interrupted at the deadline
                break
            done += 1
    finally:
        conn.set_progress_handler(None, 0)
    return done


@contextmanager
def transaction(db: sqlite_utils.Database, turn: WriteTurn | None = None,
                committed: Callable[[], None] | None = None) -> Iterator[None]:
    """An explicit ``BEGIN IMMEDIATE`` transaction, rolled back on any exception; ``turn``: taken around
    it; ``committed``: called after the commit."""
    with turn or nullcontext():
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    if committed is not None:
        committed()


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
    """Apply the migrations past ``PRAGMA user_version``, each in its own transaction.

    Several processes may open a new file at once (two workers meeting a new namespace): each reads
    the version again inside its write transaction, so a migration another process applied while
    this one waited for the lock is skipped, not run twice.
    """
    for number, script in enumerate(migrations, start=1):
        if _user_version(db) >= number:
            continue
        with transaction(db):
            if _user_version(db) >= number:
                continue  # applied by another process while this one waited
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={number}")


def _user_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])
