"""Batch commit on the event loop: the grants of one loop pass share one SQLite transaction.

:class:`LoopBatchStore` (``serve --store-mode batch``, the default for a file store) is a
:class:`~license_server.store.Store` whose asynchronous grant and refusal writes are not
committed one by one: the first write of a loop pass schedules a flush with ``call_soon``,
and every grant whose request reaches the store before that flush runs (the requests the
loop read in the same pass) joins it. The flush opens one ``BEGIN IMMEDIATE``, runs each
write in its own savepoint (a refused write undoes only itself), commits, and only then
answers each waiter. So nothing is acknowledged before its batch is in the WAL, and caps,
replay keys and single-use tokens are still decided one write at a time.

A batch costs one ``BEGIN``/``COMMIT`` and one WAL write of the pages its writes share
(the append ends of the licenses, audit and expiry indexes) instead of one per grant. It
needs no thread: the flush runs on the loop, where a writer thread would trade the
commit's cost for GIL hand-offs (measured in ``docs/store.md``). Synchronous writes run
directly, as in ``direct`` mode.

:func:`commit_batch` is the batch transaction itself, shared with the writer thread of
``group`` mode (:mod:`license_server.store_writer`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from license_server.core.model import Grant
from license_server.errors import DrmError
from license_server.sqlite_checkpoint import CHECKPOINTER
from license_server.sqlite_support import WriteTurn, connect_server_store
from license_server.store import AuditRetention, Store

Waiter = Future[Any] | asyncio.Future[Any]
Write = Callable[[Store], Any]
Outcome = tuple[Waiter, BaseException | None, Any]


def commit_batch(store: Store, turn: WriteTurn | None,
                 batch: list[tuple[Write, Waiter]]) -> tuple[bool, list[Outcome]]:
    """Run ``batch`` in one transaction, each write in a savepoint of ``store``'s connection.

    Returns whether it committed and every write's outcome (all failed with the error if it did not).
    """
    outcomes: list[Outcome] = []
    try:
        with turn if turn is not None else nullcontext():
            store.db.execute("BEGIN IMMEDIATE")
            store.in_batch = True
            try:
                for write, waiter in batch:
                    try:
                        outcomes.append((waiter, None, write(store)))
                    except Exception as exc:
                        outcomes.append((waiter, exc, None))
                store.in_batch = False
                store.db.execute("COMMIT")
            except BaseException:
                store.in_batch = False
                try:
                    store.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise
    except BaseException as exc:  # the batch did not become durable: nobody is acknowledged
        return False, [(waiter, exc, None) for _, waiter in batch]
    return True, outcomes


def resolve(outcome: Outcome) -> None:
    """Answer one waiter (unless it gave up)."""
    waiter, error, value = outcome
    if waiter.done():
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(value)


def resolve_all(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        resolve(outcome)


class LoopBatchStore(Store):
    """A file store whose asynchronous grants and refusals are batch-committed once per loop pass."""

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL",
                 retention: AuditRetention | None = None) -> None:
        turn = WriteTurn(path)
        super().__init__(connect_server_store(path, synchronous=synchronous), retention=retention,
                         checkpoint=CHECKPOINTER.register(path), turn=turn)
        self._turn = turn
        self._pending: list[tuple[Write, Waiter]] = []
        self.batches = 0  # committed batches (tests and the bench read it)

    def _enqueue(self, write: Write) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._pending.append((write, waiter))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return waiter

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        committed, outcomes = commit_batch(self, self._turn, batch)
        if committed:
            self.checkpoint.written()  # type: ignore[union-attr]
            self.batches += 1
        resolve_all(outcomes)

    async def record_grant_async(self, grant: Grant, **kwargs: Any) -> None:
        await self._enqueue(lambda store: Store.record_grant(store, grant, **kwargs))

    async def record_refusal_async(self, error: DrmError, **kwargs: Any) -> None:
        await self._enqueue(lambda store: Store.record_refusal(store, error, **kwargs))
