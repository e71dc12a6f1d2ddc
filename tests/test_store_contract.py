"""The store contract, run against both backends (``any_store``: SQLite in memory, PostgreSQL namespace):
caps, replay keys, single-use tokens, lifecycle, releases, downloads, pages, retention, documents, reset;
plus what only PostgreSQL needs to show: migrations under concurrency and cross-connection atomicity."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from license_server.core.model import (
    Grant,
    Hdcp,
    LicenseKind,
    LicensePolicy,
    PlatformVerification,
    Robustness,
    SecurityLevel,
    Track,
    TrackKey,
    VerifiedDevice,
)
from license_server.core.ports import DownloadRecord, Holder, TokenSpend, UsageRules
from license_server.errors import DrmError, ErrorCode
from license_server.store_api import DEFAULT_NAMESPACE
from license_server.store_pg_schema import PG_MIGRATIONS
from license_server.store_schema import MIGRATIONS, RESET_TABLES
from license_server.store_sql import AuditRetention

NOW = 1_800_000_000
POLICY = LicensePolicy(can_persist=True, license_duration=86400)


def device(n: int) -> VerifiedDevice:
    return VerifiedDevice(f"{n:032x}", 4660, "test-l1", SecurityLevel.L1, PlatformVerification.HARDWARE_VERIFIED,
                          Hdcp.V2_2, b"")


def grant(store, license_id: str, *, dev: int = 1, account: str | None = "acct", jti: str | None = None,
          caps: tuple[int | None, int | None, int | None] | None = None, key: str | None = None,
          kid: bytes | None = None) -> None:
    d = device(dev)
    track = TrackKey(kid or os.urandom(16), os.urandom(16), Track.HD, Robustness.of_level(SecurityLevel.L1), Hdcp.NONE)
    rules = UsageRules(account, d.device_id, *caps) if caps else None
    store.record_grant(Grant(license_id, "demo-movie", LicenseKind.PERSISTENT, (track,), POLICY, NOW, d),
                       system="widevine", request_key=key or f"rq-{license_id}", secrets={"k": "v"}, now=NOW,
                       holder=Holder(account, "premium", jti, NOW + 600 if jti else None), caps=rules)


def refused(code: ErrorCode, call, *args, **kwargs) -> None:
    with pytest.raises(DrmError) as caught:
        call(*args, **kwargs)
    assert caught.value.code is code


def test_a_grant_reads_back_with_its_device_and_audit(any_store) -> None:
    grant(any_store, "l1")
    record = any_store.license("l1")
    assert (record.state, record.account, record.secrets, record.policy) == ("issued", "acct", {"k": "v"}, POLICY)
    assert any_store.device(device(1).device_id)["model"] == "test-l1"
    assert [e["event"] for e in any_store.audit_trail(license_id="l1")] == ["grant"]
    assert any_store.counts() == {"devices": 1, "licenses": 1, "audit": 1, "seen_requests": 1}
    assert [r.license_id for r in any_store.licenses(account="acct", device_id=device(1).device_id)] == ["l1"]


def test_a_replayed_challenge_writes_nothing(any_store) -> None:
    grant(any_store, "l1", key="same")
    refused(ErrorCode.REPLAYED_CHALLENGE, grant, any_store, "l2", key="same")
    assert any_store.license("l2") is None and any_store.counts()["licenses"] == 1


def test_a_single_use_token_buys_one_license_and_its_download(any_store) -> None:
    grant(any_store, "l1", jti="tok")
    assert any_store.token_spent_on("tok") == "l1"
    refused(ErrorCode.TOKEN_REUSED, grant, any_store, "l2", jti="tok")
    download = DownloadRecord("d1", device(1).device_id, "demo-movie", "l1", "acct", "premium", "HD", "cenc", 3, 99,
                              NOW, NOW + 60)
    any_store.record_download(download, token=TokenSpend("tok", NOW + 600, "l1", same_license_ok=True))
    assert [d["download_id"] for d in any_store.downloads(device_id=device(1).device_id)] == ["d1"]
    other = DownloadRecord("d2", device(1).device_id, "demo-movie", "l9", "acct", "premium", "HD", "cenc", 3, 99,
                           NOW, NOW + 60)
    refused(ErrorCode.TOKEN_REUSED, any_store.record_download, other,
            token=TokenSpend("tok", NOW + 600, "l9", same_license_ok=True))


def test_device_download_and_monthly_caps(any_store) -> None:
    grant(any_store, "a1", dev=1, caps=(2, None, None))
    grant(any_store, "a2", dev=2, caps=(2, None, None))
    refused(ErrorCode.DEVICE_LIMIT_REACHED, grant, any_store, "a3", dev=3, caps=(2, None, None))
    grant(any_store, "a4", dev=1, caps=(2, 2, None))  # a device already holding one may take another
    refused(ErrorCode.DOWNLOAD_LIMIT_REACHED, grant, any_store, "a5", dev=1, caps=(2, 2, None))
    refused(ErrorCode.MONTHLY_ALLOWANCE_EXHAUSTED, grant, any_store, "a6", dev=2, caps=(None, None, 1))
    grant(any_store, "b1", dev=2, account=None, caps=(None, None, 1))  # no account: counted apart
    assert any_store.mark_released("a1", now=NOW, system="widevine", reason="done")
    assert any_store.mark_released("a4", now=NOW, system="widevine", reason="done")
    grant(any_store, "a7", dev=3, caps=(2, None, None))  # a released slot is free again


def test_lifecycle_renewal_release_and_replay(any_store) -> None:
    grant(any_store, "l1")
    any_store.record_lifecycle("l1", event="renew", state="renewed", now=NOW + 5, system="widevine", version=2,
                               license_start=NOW + 5, request_key="renew-1")
    refused(ErrorCode.REPLAYED_CHALLENGE, any_store.record_lifecycle, "l1", event="renew", state="renewed",
            now=NOW + 6, system="widevine", version=3, request_key="renew-1")
    record = any_store.license("l1")
    assert (record.state, record.version, record.license_start) == ("renewed", 2, NOW + 5)
    assert any_store.mark_released("l1", now=NOW + 9, system="widevine", reason="bye", request_key="rel-1")
    assert not any_store.mark_released("l1", now=NOW + 9, system="widevine", reason="bye", request_key="rel-1")
    assert not any_store.mark_released("l1", now=NOW + 9, system="widevine", reason="bye")
    assert any_store.license("l1").released_at == NOW + 9
    refused(ErrorCode.LICENSE_NOT_FOUND, any_store.record_lifecycle, "nope", event="renew", state="renewed",
            now=NOW, system="widevine")
    refused(ErrorCode.LICENSE_NOT_FOUND, any_store.mark_released, "nope", now=NOW, system="widevine", reason="")


def test_release_by_key_ids_is_idempotent(any_store) -> None:
    kid = os.urandom(16)
    grant(any_store, "l1", kid=kid)
    assert any_store.release_by_key_ids([kid], system="widevine", now=NOW) == ["l1"]
    assert any_store.release_by_key_ids([kid], system="widevine", now=NOW) == []
    assert any_store.release_by_key_ids([], system="widevine", now=NOW) == []


def test_summaries_page_by_rowid_and_count_stops_at_the_cap(any_store) -> None:
    for n in range(5):
        grant(any_store, f"l{n}", dev=n)
    page = any_store.license_summaries({"account": "acct"}, limit=2)
    assert [row["license_id"] for row in page] == ["l4", "l3"] and page[0]["tracks"] == ["HD"]
    rest = any_store.license_summaries({"account": "acct", "bogus": "x"}, before=page[-1]["rowid"], limit=10)
    assert [row["license_id"] for row in rest] == ["l2", "l1", "l0"]
    assert any_store.count_licenses({}, cap=3) == 3 and any_store.count_licenses({"state": "issued"}, cap=10) == 5
    assert [d["device_id"] for d in any_store.devices(recent=2)] and len(any_store.devices()) == 5
    assert [e["license_id"] for e in any_store.audit_since(0, limit=2)] == ["l4", "l3"]


def test_refusal_audit_retention(any_store) -> None:
    any_store.retention = AuditRetention(max_rows=3, max_age=0, check_every=10**6, batch=2)
    for n in range(7):
        any_store.record_refusal(DrmError(ErrorCode.DEVICE_REVOKED, "no"), system="widevine", device_id=None,
                                 content_id="demo-movie", now=NOW + n)
    assert any_store.purge_audit(NOW + 10) == 4
    assert len(any_store.audit_trail()) == 3


def test_reset_empties_every_table_and_moves_the_generation(any_store) -> None:
    grant(any_store, "l1", jti="tok")
    any_store.record_report("l1", system="widevine", event="acknowledged", report_key="r", once_key="o", now=NOW,
                            message="")
    any_store.update_document("clock", lambda old: '{"offset": 1}')
    generation = any_store.state_generation()
    any_store.reset_namespace()
    for table in RESET_TABLES:
        assert any_store.sql.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
    assert any_store.state_generation() > generation and any_store.document("clock") is None
    grant(any_store, "l1", jti="tok")  # replay keys and tokens were forgotten too


# ---------------------------------------------------------------- PostgreSQL only

def test_postgres_mirrors_every_sqlite_migration() -> None:
    assert len(PG_MIGRATIONS) == len(MIGRATIONS), "port the new SQLite migration to store_pg_schema.py"


def test_postgres_namespaces_are_schemas_listed_reset_and_deleted(postgres_db: str) -> None:
    from license_server.store_pg import PgStores

    one, two = PgStores(postgres_db), PgStores(postgres_db)  # two replicas
    try:
        assert one.names() == [DEFAULT_NAMESPACE]
        one.open("ci-a").update_document("clock", lambda old: '{"offset": 1}')
        assert two.open("ci-a").document("clock") == '{"offset": 1}'
        assert two.open("ci-b").document("clock") is None
        assert one.names() == ["ci-a", "ci-b", "default"]
        grant(one.open("ci-a"), "l1")
        assert two.open("ci-b").license("l1") is None and two.open("ci-a").license("l1") is not None
        two.reset("ci-a")
        assert one.open("ci-a").license("l1") is None
        one.delete("ci-a")
        assert "ci-a" not in two.names()
        with pytest.raises(ValueError):
            one.delete(DEFAULT_NAMESPACE)
        with pytest.raises(ValueError):
            one.open("Bad_Name")
    finally:
        one.close()
        two.close()


def test_postgres_replicas_starting_together_migrate_once(postgres_db: str) -> None:
    from license_server.store_pg import migrate, open_pool

    pools = [open_pool(postgres_db) for _ in range(4)]
    versions: list[int] = []
    threads = [threading.Thread(target=lambda p=p: versions.append(migrate(p, "drm_together"))) for p in pools]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert versions == [len(PG_MIGRATIONS)] * 4
        with pools[0].connection() as conn:
            assert conn.execute("SELECT version FROM drm_together.schema_version").fetchone()[0] == len(PG_MIGRATIONS)
    finally:
        for pool in pools:
            pool.close()


def test_postgres_last_slot_and_token_race_across_connections(pg_stores) -> None:
    from license_server.store_pg import PgStores

    namespace = "race-" + uuid.uuid4().hex[:8]
    other = PgStores(pg_stores.pool.conninfo)
    stores = [pg_stores.open(namespace), other.open(namespace)]
    grant(stores[0], "first", dev=0, caps=(2, None, None))
    outcomes: list[str] = []
    barrier = threading.Barrier(12)

    def contend(n: int, jti: str | None = None, caps=(2, None, None)) -> None:
        barrier.wait(10)
        try:
            grant(stores[n % 2], f"c{n}", dev=100 + n, jti=jti, caps=caps, account="acct" if caps else f"x{n}")
            outcomes.append("granted")
        except DrmError as exc:
            outcomes.append(exc.code.value)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(6)]
    threads += [threading.Thread(target=contend, args=(n, "one-token", None)) for n in range(6, 12)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes) == sorted(["granted"] * 2 + ["DEVICE_LIMIT_REACHED"] * 5 + ["TOKEN_REUSED"] * 5)
    finally:
        other.close()


def test_missing_postgres_binaries_skip_locally_and_fail_in_ci(monkeypatch) -> None:
    from tests import pg_support

    monkeypatch.setattr(pg_support, "pg_bin", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        pg_support.require_binaries()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        pg_support.require_binaries()


async def test_the_grant_path_leaves_the_event_loop_on_postgres(aiohttp_client, settings, keyring, clock,
                                                               pg_stores, make_device, monkeypatch) -> None:
    """A slow database write must not stall other requests: the grant runs on the store's thread pool."""
    import asyncio
    import time

    from license_server.app import create_app
    from tests.conftest import WidevineExchange

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = pg_stores.open("loop-" + uuid.uuid4().hex[:8])
    client = await aiohttp_client(create_app(settings, store=store, keyring=keyring, clock=clock))
    real = store.record_grant

    def slow_grant(*args, **kwargs) -> None:
        time.sleep(1.0)  # a slow database, on the worker thread
        real(*args, **kwargs)

    monkeypatch.setattr(store, "record_grant", slow_grant)
    device = make_device("L1")
    granting = asyncio.ensure_future(WidevineExchange(client).acquire(device))
    await asyncio.sleep(0.2)  # the grant is now waiting on the database
    started = time.monotonic()
    health = await client.get("/healthz")
    assert health.status == 200 and time.monotonic() - started < 0.6
    assert not granting.done()
    status, _, _, _ = await granting
    assert status == 200 and store.license(next(iter(store.licenses())).license_id) is not None
