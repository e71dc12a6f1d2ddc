"""Issue 20 defect 8: refusal audit rows are bounded by count and age (purged on write, by index)."""

from __future__ import annotations

from license_server.clock import ControlledClock
from license_server.errors import DrmError, ErrorCode
from license_server.store import AuditRetention, Store
from tests.conftest import run_cli


def refuse(store: Store, now: int, n: int = 1) -> None:
    for _ in range(n):
        store.record_refusal(DrmError(ErrorCode.MALFORMED_CHALLENGE, "bad"), system="widevine", device_id=None,
                             content_id=None, now=now)


def refusals(store: Store) -> list[int]:
    return [row[0] for row in store.db.execute("SELECT at FROM audit WHERE event = 'refusal' ORDER BY id")]


def test_refusals_older_than_the_max_age_are_purged_on_write() -> None:
    clock = ControlledClock(start=1_800_000_000, frozen=True)
    store = Store.memory()
    store.retention = AuditRetention(max_rows=0, max_age=3600, check_every=1, batch=100)
    refuse(store, clock.now(), 5)
    clock.advance(3601)
    refuse(store, clock.now())
    assert refusals(store) == [clock.now()]


def test_refusals_beyond_the_max_rows_are_purged_oldest_first() -> None:
    store = Store.memory()
    store.retention = AuditRetention(max_rows=10, max_age=0, check_every=1, batch=100)
    for at in range(25):
        refuse(store, 1_800_000_000 + at)
    assert refusals(store) == list(range(1_800_000_015, 1_800_000_025))


def test_grants_and_lifecycle_rows_are_kept_and_purge_is_batched() -> None:
    store = Store.memory()
    store.retention = AuditRetention(max_rows=0, max_age=60, check_every=10_000, batch=7)
    refuse(store, 1_800_000_000, 30)
    with store.transaction():
        store._audit(1_800_000_000, "widevine", "grant", None, "demo-movie", "lic", None, "persistent")
    assert store.purge_audit(1_800_000_100) == 30
    assert refusals(store) == []
    assert [row["event"] for row in store.audit_trail()] == ["grant"]


def test_purge_uses_the_partial_indexes() -> None:
    store = Store.memory()
    plan = " ".join(str(row) for row in store.db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM audit WHERE event = 'refusal' AND at < 5 LIMIT 3"))
    assert "audit_refusal_at" in plan


def test_serve_validates_the_retention_flags(tmp_path) -> None:
    result = run_cli("serve", "--data-dir", str(tmp_path / "d"), "--audit-max-age", "-5s", module="license_server.cli")
    assert result.returncode == 2 and "audit-max-age" in result.stderr
