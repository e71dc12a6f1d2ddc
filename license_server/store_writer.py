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
serial; other worker processes queue for the file's write turn, :class:`~license_server.sqlite_support.WriteTurn`).

Asynchronous callers (the grant path on the event loop) ``await`` the future, so
the loop never blocks on SQLite; synchronous callers wait on it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from license_server.core.model import Grant
from license_server.core.ports import DownloadRecord, Holder, TokenSpend, UsageRules
from license_server.core.streams import StreamSession, StreamStart
from license_server.errors import DrmError
from license_server.sqlite_checkpoint import CHECKPOINTER
from license_server.sqlite_support import WriteTurn, connect_server_store
from license_server.store import AuditRetention, Store
from license_server.store_batch import Outcome, Waiter, commit_batch, resolve, resolve_all

T = TypeVar("T")
MAX_BATCH = 256
_STOP = None


class GroupCommitStore(Store):
    """A file store whose writes are group-committed by one writer thread."""

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL",
                 retention: AuditRetention | None = None) -> None:
        checkpoint = CHECKPOINTER.register(path)
        super().__init__(connect_server_store(path, synchronous=synchronous), retention=retention,
                         checkpoint=checkpoint, turn=WriteTurn(path))  # reads, migrations, unrouted writes
        self._writer = Store(connect_server_store(path, synchronous=synchronous), retention=retention)
        self._turn = WriteTurn(path)
        self._queue: queue.SimpleQueue[tuple[Callable[[Store], Any], Waiter] | None] = queue.SimpleQueue()
        self.batches = 0  # committed batches (tests and the bench read it)
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def prewarm(self, seconds: float) -> int:
        """Warm the writer's connection: grants, and the cap counts inside them, run there."""
        return self._writer.prewarm(seconds)

    # ------------------------------------------------------------ the writer

    def submit(self, write: Callable[[Store], T]) -> Future[T]:
        """Queue ``write`` for a synchronous caller (it waits on the future)."""
        future: Future[T] = Future()
        self._queue.put((write, future))
        return future

    async def run(self, write: Callable[[Store], T]) -> T:
        """Queue ``write`` and await its batch's commit, without blocking the event loop."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((write, future))
        return await future

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
            self._settle(self._commit(batch))

    def _commit(self, batch: list[tuple[Callable[[Store], Any], Waiter]]) -> list[Outcome]:
        """Run the batch in one transaction; every write's outcome, all failed if the commit did not happen."""
        committed, outcomes = commit_batch(self._writer, self._turn, batch)
        if committed:
            self.checkpoint.written()  # type: ignore[union-attr]
            self.batches += 1
        return outcomes

    @staticmethod
    def _settle(outcomes: list[Outcome]) -> None:
        """Answer the waiters: synchronous ones at once, each event loop's in one wake-up."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
        for outcome in outcomes:
            waiter = outcome[0]
            if isinstance(waiter, asyncio.Future):
                by_loop.setdefault(waiter.get_loop(), []).append(outcome)
            else:
                resolve(outcome)
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(resolve_all, settled)
            except RuntimeError:  # the loop closed while its writes ran: nobody is waiting any more
                pass

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(10)
        self._writer.close()
        self._turn.close()
        super().close()

    # --------------------------------------------------- writes, routed to it

    def record_grant(self, grant: Grant, **kwargs: Any) -> None:
        self.submit(lambda w: w.record_grant(grant, **kwargs)).result()

    async def record_grant_async(self, grant: Grant, *, system: str, request_key: str | None, secrets: dict[str, str],
                                 now: int, holder: Holder | None = None, caps: UsageRules | None = None,
                                 stream: StreamStart | None = None) -> None:
        await self.run(lambda w: w.record_grant(
            grant, system=system, request_key=request_key, secrets=secrets, now=now, holder=holder, caps=caps,
            stream=stream))

    def record_refusal(self, error: DrmError, **kwargs: Any) -> None:
        self.submit(lambda w: w.record_refusal(error, **kwargs)).result()

    async def record_refusal_async(self, error: DrmError, **kwargs: Any) -> None:
        await self.run(lambda w: w.record_refusal(error, **kwargs))

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
