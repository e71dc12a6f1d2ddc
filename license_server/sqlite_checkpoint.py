"""WAL checkpoints off the request path: one background thread per process.

With ``synchronous=NORMAL`` a commit only appends to the WAL; the disk syncs happen
at checkpoints. SQLite's automatic checkpoint runs inside whichever commit crosses
the threshold (1,000 pages), so every so often a request waits for two ``fsync``\\ s.
A server store turns the automatic checkpoint off (``wal_autocheckpoint=0``) and
registers its file here instead: the checkpointer thread runs
``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection, a few times a second, for
the files written since its last pass. A passive checkpoint never blocks writers or
readers and takes no write lock, so other worker processes (each with its own
checkpointer) keep committing while it syncs; durability is unchanged (a commit is
in the WAL before it is acknowledged, the checkpoint only copies it into the file).

Under steady writes a passive checkpoint never catches up with the last frame, and
SQLite only rewinds the WAL to its start after a checkpoint that did: the file would
grow without end. So once the WAL holds :data:`REWIND_FRAMES` frames, the pass takes
the file's write turn (:class:`~license_server.sqlite_support.WriteTurn`) for a second,
short passive checkpoint of the remaining tail; the next commit then rewinds the WAL.
Writers wait for that tail only (the bulk was copied without the turn).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from license_server.sqlite_support import WriteTurn

log = logging.getLogger(__name__)
INTERVAL = 0.2  # seconds between passes
REWIND_FRAMES = 16000  # about 64 MB of WAL: each rewind holds writers for a tail checkpoint's fsyncs


class CheckpointHandle:
    """One registered database file; :meth:`written` marks it for the next pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.turn = WriteTurn(path)
        self.dirty = False
        self.conn: sqlite3.Connection | None = None

    def written(self) -> None:
        self.dirty = True


class Checkpointer:
    """The process's checkpoint thread, started with the first registered file."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._handles: list[CheckpointHandle] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, path: Path | str) -> CheckpointHandle:
        handle = CheckpointHandle(Path(path))
        with self._lock:
            self._handles.append(handle)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
                self._thread.start()
        return handle

    def unregister(self, handle: CheckpointHandle) -> None:
        """Stop checkpointing ``handle`` and close its connection (waits for a pass in progress)."""
        with self._lock:
            if handle in self._handles:
                self._handles.remove(handle)
            if handle.conn is not None:
                handle.conn.close()
                handle.conn = None
            handle.turn.close()

    def run_pass(self) -> int:
        """Checkpoint every file written since the last pass; returns how many were checkpointed."""
        done = 0
        with self._lock:
            for handle in [h for h in self._handles if h.dirty]:
                handle.dirty = False
                try:
                    if handle.conn is None:
                        handle.conn = sqlite3.connect(str(handle.path), isolation_level=None,
                                                      check_same_thread=False)
                    _, frames, _ = handle.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames >= REWIND_FRAMES:
                        with handle.turn:
                            handle.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    done += 1
                except sqlite3.Error as exc:  # a busy or vanished file: the next pass retries
                    log.debug("checkpoint of %s skipped: %s", handle.path.name, exc)
                    handle.dirty = True
        return done

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.run_pass()


CHECKPOINTER = Checkpointer()
