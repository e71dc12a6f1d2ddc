"""Download slots counted in SQL (migration 10): the stored slot end, its upkeep, and the fill at upgrade."""

from __future__ import annotations

import json
import os
from pathlib import Path

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
from license_server.store_schema import MIGRATIONS

NOW = 1_800_000_000
DAY = 86400
DEVICE = VerifiedDevice("d" * 32, 4660, "model", SecurityLevel.L1, PlatformVerification.HARDWARE_VERIFIED,
                        Hdcp.V2_2, b"")


def _grant(store: Store, license_id: str, policy: LicensePolicy, kind: LicenseKind = LicenseKind.PERSISTENT) -> None:
    key = TrackKey(os.urandom(16), os.urandom(16), Track.HD, Robustness.of_level(SecurityLevel.L1), Hdcp.NONE)
    store.record_grant(Grant(license_id, "title", kind, (key,), policy, NOW, DEVICE), system="widevine",
                       request_key=license_id, secrets={}, now=NOW, holder=Holder("alice", "premium"))


def test_active_holdings_are_counted_until_their_slot_ends(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    _grant(store, "rental", LicensePolicy(can_persist=True, rental_duration=10 * DAY))
    _grant(store, "forever", LicensePolicy(can_persist=True))
    _grant(store, "streamed", LicensePolicy(license_duration=DAY), LicenseKind.TEMPORARY)
    snapshot = store._usage_snapshot("alice", DEVICE.device_id, NOW)
    assert (snapshot.device_active, snapshot.account_devices) == (2, frozenset({DEVICE.device_id}))
    assert store._usage_snapshot("alice", DEVICE.device_id, NOW + 10 * DAY).device_active == 1
    store.mark_released("forever", now=NOW, system="widevine", reason="test")
    later = store._usage_snapshot("alice", DEVICE.device_id, NOW + 10 * DAY)
    assert (later.device_active, later.account_devices) == (0, frozenset())
    store.close()


def test_a_lifecycle_event_that_moves_the_start_moves_the_slot_end(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    _grant(store, "rental", LicensePolicy(can_persist=True, rental_duration=DAY))
    store.record_lifecycle("rental", event="renew", state="renewed", now=NOW + DAY // 2, system="widevine",
                           license_start=NOW + DAY // 2)
    assert store._usage_snapshot(None, DEVICE.device_id, NOW + DAY).device_active == 1  # ends at 1.5 days now
    longer = LicensePolicy(can_persist=True, rental_duration=5 * DAY)
    store.record_lifecycle("rental", event="renew", state="renewed", now=NOW + DAY, system="widevine",
                           policy=longer)
    assert store._usage_snapshot(None, DEVICE.device_id, NOW + 4 * DAY).device_active == 1
    assert store._usage_snapshot(None, DEVICE.device_id, NOW + 6 * DAY).device_active == 0
    store.close()


def test_licenses_stored_before_the_migration_get_their_slot_end_at_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = connect(path, synchronous="NORMAL")
    migrate(db, MIGRATIONS[:9])  # a store as the previous release left it
    policy = json.dumps(LicensePolicy(can_persist=True, rental_duration=10 * DAY).as_dict())
    db.execute("INSERT INTO licenses (license_id, system, device_id, content_id, kind, state, version, kids, tracks, "
               "policy, issued_at, updated_at, secrets, license_start, account) VALUES "
               "('old', 'widevine', ?, 'title', 'persistent', 'in_use', 1, '[]', '[]', ?, ?, ?, '{}', ?, 'alice')",
               (DEVICE.device_id, policy, NOW, NOW, NOW))
    db.conn.close()
    store = Store.open(path)
    assert store.db.execute("SELECT slot_end FROM licenses").fetchone()[0] == NOW + 10 * DAY
    assert store._usage_snapshot("alice", DEVICE.device_id, NOW).device_active == 1
    assert store.fill_slot_ends() == 0  # nothing left: later opens take no write transaction
    store.close()
