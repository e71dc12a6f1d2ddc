"""Group commit (license_server/store_writer.py): batched writes, each atomic on its own, acknowledged when durable."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest

from license_server.bench_store import Probe
from license_server.core.model import Grant, LicenseKind, LicensePolicy
from license_server.errors import DrmError, ErrorCode
from license_server.store import Store
from license_server.store_writer import GroupCommitStore

NOW = 1_780_000_000


def clearkey_grant(n: int) -> Grant:
    return Grant(f"ck-{n}", "demo-movie", LicenseKind.TEMPORARY, (), LicensePolicy(), NOW, None)


@pytest.fixture
def store(tmp_path):
    s = GroupCommitStore(tmp_path / "store.db")
    yield s
    s.close()


def test_concurrent_grants_share_batches_and_a_replay_inside_one_poisons_nothing(store, tmp_path) -> None:
    async def go() -> list[object]:
        # 40 grants at once; #7 and #8 reuse the replay key of #3, #20 re-spends nothing but is fine
        tasks = [store.record_grant_async(clearkey_grant(n), system="clearkey",
                                          request_key=f"rk-{3 if n in (7, 8) else n}", secrets={}, now=NOW)
                 for n in range(40)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(go())
    refused = [n for n, o in enumerate(outcomes) if isinstance(o, DrmError)]
    assert refused == [7, 8] and all(o.code is ErrorCode.REPLAYED_CHALLENGE for o in outcomes if o)
    assert store.batches < 40  # grants were grouped
    # durable and visible to another connection: 38 licenses, one audit entry each, nothing of #7/#8
    other = Store.open(tmp_path / "store.db")
    ids = {r.license_id for r in other.licenses()}
    assert len(ids) == 38 and "ck-7" not in ids and "ck-8" not in ids
    assert other.counts()["audit"] == 38
    other.close()


def test_sync_writes_and_caps_go_through_the_writer(store) -> None:
    probe = Probe(store, "w")
    probe.grant()
    probe.renewal()
    record = store.license(probe.last_license)
    assert record is not None and record.state == "renewed" and record.version == 2
    assert store.mark_released(probe.last_license, now=NOW, system="widevine", reason="test") is True
    assert store.mark_released(probe.last_license, now=NOW, system="widevine", reason="test") is False
    with pytest.raises(DrmError) as refused:
        store.record_lifecycle("nope", event="renew", state="renewed", now=NOW, system="widevine")
    assert refused.value.code is ErrorCode.LICENSE_NOT_FOUND


def test_a_failed_commit_acknowledges_nobody(store, monkeypatch) -> None:
    real = store._writer.db.execute

    def failing(sql: str, *args: object):
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return real(sql, *args)

    monkeypatch.setattr(store._writer.db, "execute", failing)
    with pytest.raises(sqlite3.OperationalError):
        store.record_grant(clearkey_grant(1), system="clearkey", request_key="rk-x", secrets={}, now=NOW)
    monkeypatch.setattr(store._writer.db, "execute", real)
    assert store.license("ck-1") is None


def test_the_writer_uses_its_own_connection(store) -> None:
    assert store._writer.db.conn is not store.db.conn
    assert os.path.exists(store.db.conn.execute("PRAGMA database_list").fetchone()[2])


@pytest.mark.parametrize("mode", ["direct", "batch", "group"])
def test_kill_9_loses_no_acknowledged_license(server_process, keyring, mode) -> None:
    """Clear Key grants fired concurrently at a real server, killed with SIGKILL mid-stream:
    every license answered 200 is in the store afterwards (the answer waits for the commit)."""
    import signal
    import threading
    import urllib.request

    server = server_process("--store-mode", mode)
    from license_server.protocols import clearkey

    kid = next(t.kid for t in keyring.catalog.title("demo-movie").tracks if t.track.value == "SD")
    body = clearkey.build_license_request([kid])
    acknowledged = [0]
    stop = threading.Event()

    def fire() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(urllib.request.Request(
                        server.url + "/clearkey/license", data=body, method="POST"), timeout=5) as r:
                    r.read()
                    if r.status == 200:
                        acknowledged[0] += 1
            except OSError:
                return

    threads = [threading.Thread(target=fire) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = __import__("time").monotonic() + 30
    while acknowledged[0] < 150 and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.05)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(10)
    assert acknowledged[0] >= 150
    store = Store.open(server.data_dir / "license-server.db")
    try:
        assert len(store.licenses(system="clearkey")) >= acknowledged[0]
    finally:
        store.close()
