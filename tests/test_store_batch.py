"""Batch commit on the event loop (license_server/store_batch.py): one transaction per loop pass, each write
atomic on its own, nobody answered before the batch committed."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from license_server.core.model import Grant, LicenseKind, LicensePolicy
from license_server.errors import DrmError, ErrorCode
from license_server.store import Store
from license_server.store_batch import LoopBatchStore

NOW = 1_780_000_000


def grant(n: int) -> Grant:
    return Grant(f"ck-{n}", "demo-movie", LicenseKind.TEMPORARY, (), LicensePolicy(), NOW, None)


@pytest.fixture
def store(tmp_path):
    s = LoopBatchStore(tmp_path / "store.db")
    yield s
    s.close()


def _fire(store: LoopBatchStore, keys: list[str]) -> list[object]:
    async def go() -> list[object]:
        return await asyncio.gather(*(store.record_grant_async(grant(n), system="clearkey", request_key=key,
                                                               secrets={}, now=NOW) for n, key in enumerate(keys)),
                                    return_exceptions=True)
    return asyncio.run(go())


def test_one_loop_pass_is_one_transaction_and_a_replay_in_it_undoes_only_itself(store, tmp_path) -> None:
    outcomes = _fire(store, [f"rk-{3 if n in (7, 8) else n}" for n in range(40)])
    refused = [n for n, o in enumerate(outcomes) if isinstance(o, DrmError)]
    assert refused == [7, 8] and all(o.code is ErrorCode.REPLAYED_CHALLENGE for o in outcomes if o)
    assert store.batches == 1  # the 40 writes reached the store in one pass
    other = Store.open(tmp_path / "store.db")  # committed, and visible to another connection
    ids = {r.license_id for r in other.licenses()}
    assert len(ids) == 38 and not {"ck-7", "ck-8"} & ids
    assert other.counts()["audit"] == 38
    other.close()


def test_a_failed_commit_answers_every_write_of_the_batch_with_the_error(store, monkeypatch) -> None:
    real = store.db.execute

    def failing(sql: str, *args: object):
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return real(sql, *args)

    monkeypatch.setattr(store.db, "execute", failing)
    outcomes = _fire(store, ["a", "b", "c"])
    assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes)
    monkeypatch.setattr(store.db, "execute", real)
    assert store.licenses() == [] and store.batches == 0
    assert _fire(store, ["a"]) == [None]  # rolled back: the replay keys were not spent


def test_synchronous_writes_run_directly(store) -> None:
    store.record_grant(grant(1), system="clearkey", request_key="sync", secrets={}, now=NOW)
    assert store.license("ck-1") is not None and store.batches == 0


@pytest.mark.parametrize("mode", ["direct", "batch", "group"])
def test_store_sync_full_syncs_every_commit_in_each_mode(tmp_path, mode) -> None:
    from license_server.cli import _open_stores
    from license_server.store_api import DEFAULT_NAMESPACE
    from license_server.store_sql import AuditRetention
    from license_server.store_url import StoreLocation

    location = StoreLocation("sqlite", path=tmp_path / "s.db")
    for synchronous, level in (("NORMAL", 1), ("FULL", 2)):
        stores = _open_stores(location, mode, AuditRetention(), synchronous)
        store = stores.open(DEFAULT_NAMESPACE)
        connections = [store.db] + ([store._writer.db] if mode == "group" else [])
        assert [c.execute("PRAGMA synchronous").fetchone()[0] for c in connections] == [level] * len(connections)
        stores.close()
