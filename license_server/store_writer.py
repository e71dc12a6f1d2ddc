"""Group commit: one writer thread batches concurrent writes into one SQLite transaction.

:class:`GroupCommitStore` is a :class:`Store` whose reads run on the caller's
connection and whose writes are queued to a writer thread with its own
connection. The writer takes whatever writes queued while its previous commit
ran, opens one ``BEGIN IMMEDIATE`` transaction, runs each write inside its own
savepoint (:meth:`Store.transaction` becomes a savepoint in a batch, so a
refused write, a replayed challenge or a spent token, undoes only itself) and
commits; only then is each write's future resolved. So no answer leaves before
its batch is durable at the store's ``synchronous`` level, and caps, replay keys
and single-use tokens are still decided one write at a time (the writer is
serial; other worker processes contend on the database lock as before).

Asynchronous callers (the grant path on the event loop) ``await`` the future, so
the loop never blocks on SQLite; synchronous callers wait on it.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from license_server.core.model import Grant
from license_server.core.ports import DownloadRecord, Holder, TokenSpend, UsageRules
from license_server.core.streams import StreamSession, StreamStart
from license_server.errors import DrmError
from license_server.sqlite_support import connect
from license_server.store import AuditRetention, Store

T = TypeVar("T")
MAX_BATCH = 256
_STOP = None


class GroupCommitStore(Store):
    """A file store whose writes are group-committed by one writer thread."""

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL",
                 retention: AuditRetention | None = None) -> None:
        super().__init__(connect(path, synchronous=synchronous), retention=retention)  # reads, and migrations
        self._writer = Store(connect(path, synchronous=synchronous), retention=retention)
        self._queue: queue.SimpleQueue[tuple[Callable[[Store], Any], Future[Any]] | None] = queue.SimpleQueue()
        self.batches = 0  # committed batches (tests and the bench read it)
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ the writer

    def submit(self, write: Callable[[Store], T]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((write, future))
        return future

    def _run(self) -> None:
        while (first := self._queue.get()) is not _STOP:
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[tuple[Callable[[Store], Any], Future[Any]]]) -> None:
        writer = self._writer
        outcomes: list[tuple[Future[Any], Exception | None, Any]] = []
        try:
            writer.db.execute("BEGIN IMMEDIATE")
            writer.in_batch = True
            for write, future in batch:
                try:
                    outcomes.append((future, None, write(writer)))
                except Exception as exc:
                    outcomes.append((future, exc, None))
            writer.in_batch = False
            writer.db.execute("COMMIT")
        except BaseException as exc:  # the batch did not become durable: nobody is acknowledged
            writer.in_batch = False
            try:
                writer.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            for _, future in batch:
                future.set_exception(exc)
            return
        self.batches += 1
        for future, error, value in outcomes:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(10)
        self._writer.close()
        super().close()

    # --------------------------------------------------- writes, routed to it

    def record_grant(self, grant: Grant, **kwargs: Any) -> None:
        self.submit(lambda w: w.record_grant(grant, **kwargs)).result()

    async def record_grant_async(self, grant: Grant, *, system: str, request_key: str, secrets: dict[str, str],
                                 now: int, holder: Holder | None = None, caps: UsageRules | None = None,
                                 stream: StreamStart | None = None) -> None:
        await asyncio.wrap_future(self.submit(lambda w: w.record_grant(
            grant, system=system, request_key=request_key, secrets=secrets, now=now, holder=holder, caps=caps,
            stream=stream)))

    def record_refusal(self, error: DrmError, **kwargs: Any) -> None:
        self.submit(lambda w: w.record_refusal(error, **kwargs)).result()

    async def record_refusal_async(self, error: DrmError, **kwargs: Any) -> None:
        await asyncio.wrap_future(self.submit(lambda w: w.record_refusal(error, **kwargs)))

    def release_by_key_ids(self, kids: list[bytes], **kwargs: Any) -> list[str]:
        return self.submit(lambda w: w.release_by_key_ids(kids, **kwargs)).result()

    def record_lifecycle(self, license_id: str, **kwargs: Any) -> None:
        self.submit(lambda w: w.record_lifecycle(license_id, **kwargs)).result()

    def mark_released(self, license_id: str, **kwargs: Any) -> bool:
        return self.submit(lambda w: w.mark_released(license_id, **kwargs)).result()

    def record_report(self, license_id: str, **kwargs: Any) -> bool:
        return self.submit(lambda w: w.record_report(license_id, **kwargs)).result()

    def record_download(self, download: DownloadRecord, *, token: TokenSpend | None = None) -> None:
        self.submit(lambda w: w.record_download(download, token=token)).result()

    def close_stream(self, **kwargs: Any) -> list[str]:
        return self.submit(lambda w: w.close_stream(**kwargs)).result()

    def end_stream(self, session_id: str, **kwargs: Any) -> StreamSession | None:
        return self.submit(lambda w: w.end_stream(session_id, **kwargs)).result()
