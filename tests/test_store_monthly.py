"""The monthly allowance's counter (migration 11): counted at grant, per calendar month (UTC), filled at upgrade."""

from __future__ import annotations

import os
from pathlib import Path

from license_server.core.entitlements import month_start
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
from license_server.core.ports import Holder
from license_server.sqlite_support import connect, migrate
from license_server.store import Store
from license_server.store_pg_schema import PG_MIGRATIONS
from license_server.store_schema import MIGRATIONS

NOW = 1_815_638_400  # 2027-07-15 08:00 UTC
DAY = 86400
MONTH_END = 1_817_078_399  # 2027-07-31 23:59:59 UTC
LAST_MONTH = NOW - 20 * DAY
DEVICE, OTHER = "d" * 32, "e" * 32
# (license id, device, account, kind, issued at): what a store held before migration 11
OLD_LICENSES = [
    ("p1", DEVICE, "alice", "persistent", NOW - DAY), ("p2", DEVICE, "alice", "persistent", MONTH_END),
    ("p3", DEVICE, "alice", "persistent", LAST_MONTH), ("t1", DEVICE, "alice", "temporary", NOW),
    ("p4", DEVICE, None, "persistent", NOW), ("p5", OTHER, "alice", "persistent", NOW),
]
INSERT_OLD = ("INSERT INTO licenses (license_id, system, device_id, content_id, kind, state, version, kids, tracks, "
              "policy, issued_at, updated_at, secrets, license_start, account) "
              "VALUES (?, 'widevine', ?, 'title', ?, 'issued', 1, '[]', '[]', '{}', ?, ?, '{}', ?, ?)")


def _old_rows() -> list[tuple[object, ...]]:
    return [(lid, device, kind, at, at, at, account) for lid, device, account, kind, at in OLD_LICENSES]


def _grant(store, license_id: str, *, account: str | None = "alice", at: int = NOW,
           kind: LicenseKind = LicenseKind.PERSISTENT) -> None:
    device = VerifiedDevice(DEVICE, 4660, "model", SecurityLevel.L1, PlatformVerification.HARDWARE_VERIFIED,
                            Hdcp.V2_2, b"")
    key = TrackKey(os.urandom(16), os.urandom(16), Track.HD, Robustness.of_level(SecurityLevel.L1), Hdcp.NONE)
    store.record_grant(Grant(license_id, "title", kind, (key,), LicensePolicy(can_persist=True), at, device),
                       system="widevine", request_key=license_id, secrets={}, now=at, holder=Holder(account, "premium"))


def _this_month(store, account: str | None, now: int = NOW, device_id: str = DEVICE) -> int:
    return store._usage_snapshot(account, device_id, now).device_grants_this_month


def _assert_counted_from_the_old_licenses(store) -> None:
    months = {row[0] for row in store.sql.execute("SELECT month FROM monthly_grants").fetchall()}
    assert months == {month_start(NOW), month_start(LAST_MONTH)}  # one row per calendar month, keyed by its start
    assert _this_month(store, "alice") == 2  # p1, p2: not last month's p3, the temporary t1, nor p4 or p5
    assert _this_month(store, None) == 1 and _this_month(store, "alice", device_id=OTHER) == 1
    assert _this_month(store, "alice", now=LAST_MONTH) == 3  # a clock set back still sees later grants
    assert _this_month(store, "alice", now=MONTH_END + 1) == 0  # the allowance resets on the 1st
    _grant(store, "new")
    assert _this_month(store, "alice") == 3


def test_licenses_stored_before_the_migration_are_counted_in_their_month(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = connect(path, synchronous="NORMAL")
    migrate(db, MIGRATIONS[:10])  # a store as the previous release left it
    db.conn.executemany(INSERT_OLD, _old_rows())
    db.conn.close()
    store = Store.open(path)
    try:
        _assert_counted_from_the_old_licenses(store)
    finally:
        store.close()


def test_postgres_counts_the_old_licenses_in_their_month_too(postgres_db: str) -> None:
    import psycopg

    from license_server.store_pg import PgStores

    with psycopg.connect(postgres_db, autocommit=True) as conn:  # a namespace as the previous release left it
        conn.execute('CREATE SCHEMA "drm_old"')
        conn.execute('SET search_path TO "drm_old"')
        conn.execute("CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)")
        for script in PG_MIGRATIONS[:10]:
            conn.execute(script.encode())
        conn.execute("INSERT INTO schema_version VALUES (1, 10)")
        with conn.cursor() as cur:
            cur.executemany(INSERT_OLD.replace("?", "%s"), _old_rows())
    stores = PgStores(postgres_db)
    try:
        _assert_counted_from_the_old_licenses(stores.open("old"))
    finally:
        stores.close()


def test_each_grant_counts_in_the_month_it_was_issued(any_store) -> None:
    _grant(any_store, "jan", at=MONTH_END)
    _grant(any_store, "feb", at=MONTH_END + 1)
    _grant(any_store, "stream", at=MONTH_END + 1, kind=LicenseKind.TEMPORARY)  # temporary: not counted
    _grant(any_store, "anonymous", account=None, at=MONTH_END + 1)  # no account: counted apart
    assert _this_month(any_store, "alice", now=MONTH_END) == 2 and _this_month(any_store, "alice", MONTH_END + 1) == 1
    assert _this_month(any_store, None, now=MONTH_END + 1) == 1
    any_store.reset_namespace()
    assert _this_month(any_store, "alice", now=MONTH_END) == 0
