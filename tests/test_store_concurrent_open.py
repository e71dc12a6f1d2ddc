"""Several processes opening one new store file at once (two workers meeting a new namespace)."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from license_server.sqlite_support import switch_to_wal
from license_server.store import Store
from license_server.store_schema import MIGRATIONS

OPENERS = 4


def open_and_report(path: str, start: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    start.wait()
    try:
        store = Store.open(path)
        results.put(("ok", store.schema_version))
        store.close()
    except Exception as error:  # reported to the test, which shows it
        results.put(("error", f"{type(error).__name__}: {error}"))


def test_processes_that_open_one_new_file_at_once_all_get_the_migrated_store(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    for attempt in range(3):
        path = str(tmp_path / f"race-{attempt}.db")
        start, results = context.Barrier(OPENERS), context.Queue()
        openers = [context.Process(target=open_and_report, args=(path, start, results)) for _ in range(OPENERS)]
        for opener in openers:
            opener.start()
        outcomes = [results.get(timeout=60) for _ in openers]
        for opener in openers:
            opener.join(timeout=60)
        assert outcomes == [("ok", len(MIGRATIONS))] * OPENERS, outcomes


class LockedAtFirst:
    """A connection whose first ``journal_mode=WAL`` is refused as SQLite refuses it when processes meet."""

    def __init__(self, refusals: int) -> None:
        self.refusals, self.mode, self.switches = refusals, "delete", 0

    def execute(self, sql: str):
        if sql == "PRAGMA journal_mode=WAL":
            self.switches += 1
            if self.refusals:
                self.refusals -= 1
                raise sqlite3.OperationalError("database is locked")
            self.mode = "wal"
        return self

    def fetchone(self) -> tuple[str]:
        return (self.mode,)


def test_a_switch_to_wal_refused_at_once_is_retried() -> None:
    """Regression: one of four processes opening a new file failed with "database is locked" after well under
    the busy timeout, in the journal-mode switch (about once in a hundred openings)."""
    conn = LockedAtFirst(refusals=3)
    switch_to_wal(conn)  # type: ignore[arg-type]
    assert conn.mode == "wal" and conn.switches == 4


def test_a_switch_to_wal_gives_up_at_its_deadline() -> None:
    conn = LockedAtFirst(refusals=10**9)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        switch_to_wal(conn, seconds=0.05)  # type: ignore[arg-type]
    assert conn.mode == "delete"
