"""WAL checkpoints off the request path, and the write turn shared by writers of one file."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from license_server import sqlite_checkpoint
from license_server.bench_store import Probe
from license_server.sqlite_support import WriteTurn
from license_server.store import Store
from license_server.store_writer import GroupCommitStore


def test_a_file_store_never_checkpoints_inside_a_commit(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    try:
        assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        probe = Probe(store, "a")
        for _ in range(5):
            probe.grant()
        assert store.checkpoint is not None and store.checkpoint.dirty  # left for the checkpointer
        sqlite_checkpoint.CHECKPOINTER.run_pass()
        assert not store.checkpoint.dirty
    finally:
        store.close()


def test_group_store_marks_its_batches_for_the_checkpointer(tmp_path: Path) -> None:
    store = GroupCommitStore(tmp_path / "g.db")
    try:
        sqlite_checkpoint.CHECKPOINTER.run_pass()
        Probe(store, "g").grant()
        assert store.checkpoint is not None and store.checkpoint.dirty
    finally:
        store.close()


def _wal_after_steady_writes(path: Path, grants: int) -> int:
    """Write ``grants`` grants from one thread while passes run as often as they can; the WAL's size."""
    store = Store.open(path)
    probe = Probe(store, path.stem)
    writer = threading.Thread(target=lambda: [probe.grant() for _ in range(grants)])
    writer.start()
    while writer.is_alive():
        sqlite_checkpoint.CHECKPOINTER.run_pass()
        time.sleep(0.02)
    size = os.path.getsize(f"{path}-wal")
    store.close()
    return size


def test_the_wal_is_rewound_under_steady_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Passive checkpoints alone never catch up with a busy writer, so the WAL would only grow."""
    monkeypatch.setattr(sqlite_checkpoint, "REWIND_FRAMES", 4000)  # 16 MB: well inside what 2,500 grants write
    rewound = _wal_after_steady_writes(tmp_path / "rewound.db", 2500)
    monkeypatch.setattr(sqlite_checkpoint, "REWIND_FRAMES", 10**9)
    grown = _wal_after_steady_writes(tmp_path / "grown.db", 2500)
    assert rewound < grown / 2, (rewound, grown)


def test_a_write_turn_excludes_every_other_writer_of_the_file(tmp_path: Path) -> None:
    first, second = WriteTurn(tmp_path / "s.db"), WriteTurn(tmp_path / "s.db")
    entered = threading.Event()

    def take_second() -> None:
        with second:
            entered.set()

    try:
        with first:
            waiter = threading.Thread(target=take_second)
            waiter.start()
            assert not entered.wait(0.3)  # queued behind the first
        assert entered.wait(5)  # woken when the first committed
        waiter.join(5)
    finally:
        first.close()
        second.close()
