"""Flat cost as the store grows: every per-request query and admin page is served by an index.

Not timed: the query plans (``EXPLAIN QUERY PLAN``) of the statements the store
runs must never scan ``licenses``, ``audit``, ``devices``, ``downloads`` or the
replay/token tables in full (a scan *in index order* that stops at ``LIMIT``
is allowed for an unfiltered admin page). The statements are captured from
the store's own calls, so a new unindexed query fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from license_server.bench_store import Probe, fill, fill_layout, fill_license_id, prepare, warm
from license_server.core.model import Grant, LicenseKind, LicensePolicy
from license_server.store import Store
from tests.conftest import run_cli

WATCHED = ("licenses", "audit", "devices", "downloads", "seen_requests", "used_tokens", "license_kids")


def captured(store: Store, action) -> list[tuple[str, tuple]]:
    """Run ``action`` and return every SQL statement (with its parameters) the store executed."""
    statements: list[tuple[str, tuple]] = []
    store.db.conn.set_trace_callback(lambda sql: statements.append(sql))
    try:
        action()
    finally:
        store.db.conn.set_trace_callback(None)
    return [(sql, ()) for sql in statements]


def full_scans(store: Store, sql: str) -> list[str]:
    if not re.match(r"\s*(SELECT|UPDATE|DELETE|INSERT)", sql, re.I):
        return []
    plan = [row[3] for row in store.db.conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()]
    bad = []
    # A page read in index (or rowid) order that stops at LIMIT costs the page, not the table.
    ordered_page = bool(re.search(r"ORDER BY .* LIMIT \d+", sql, re.I | re.S)) and not any(
        "TEMP B-TREE" in step for step in plan)
    for step in plan:
        m = re.match(r"SCAN (\w+)", step)
        if m and m.group(1) in WATCHED:
            if not ordered_page:
                bad.append(f"{step}  <-  {sql.strip()[:160]}")
    return bad


FILLED = 2000


@pytest.fixture
def store() -> Store:
    s = Store.memory()
    fill(s, FILLED, holders=50)
    yield s
    s.close()


def test_every_per_request_query_uses_an_index(store: Store) -> None:
    probe = Probe(store, "t")
    grant = Grant("ck-1", "title-1", LicenseKind.TEMPORARY, (), LicensePolicy(), 1_780_000_000, None)
    actions = [
        probe.grant, probe.renewal, probe.cap_check, probe.admin_page,
        lambda: store.license(fill_license_id(7, FILLED)),
        lambda: store.token_spent_on("jti-1"),
        lambda: store.licenses(limit=100, device_id=f"{3:032x}"),
        lambda: store.licenses(limit=100, device_id=f"{3:032x}", system="widevine", account="acct-3"),
        lambda: store.licenses(limit=100, content_id="title-3", system="widevine"),
        lambda: store.licenses(limit=100, system="widevine"),
        lambda: store.audit_trail(license_id=fill_license_id(7, FILLED), limit=200),
        lambda: store.audit_trail(limit=100),
        lambda: store.device(f"{3:032x}"),
        lambda: store.downloads(device_id=f"{3:032x}"),
        lambda: store.mark_released(fill_license_id(9, FILLED), now=1_780_000_000, system="widevine", reason="t"),
        lambda: store.release_by_key_ids([bytes.fromhex(f"{11:032x}")], system="widevine", now=1_780_000_000),
        lambda: store.record_grant(grant, system="clearkey", request_key="rk-1", secrets={}, now=1_780_000_000),
    ]
    problems: list[str] = []
    for action in actions:
        for sql, _ in captured(store, action):
            problems += full_scans(store, sql)
    assert problems == []


def test_the_cap_counts_read_index_entries_only(store: Store) -> None:
    """Regression: the slot indexes lacked kind and state, which their condition names, so every count read
    each holding's row back from the licenses table (one page per holding, cold on a large store)."""
    probe = Probe(store, "t", 50)
    steps = [row[3] for sql, _ in captured(store, probe.cap_check)
             for row in store.db.conn.execute("EXPLAIN QUERY PLAN " + sql) if "licenses" in row[3]]
    assert len(steps) == 2 and all("USING COVERING INDEX licenses_slots_" in step for step in steps), steps


def test_the_plan_check_catches_an_unindexed_query(store: Store) -> None:
    assert full_scans(store, "SELECT * FROM licenses WHERE tier = 'premium'")
    assert full_scans(store, "SELECT * FROM licenses ORDER BY updated_at LIMIT 10")


def test_release_by_key_ids_finds_licenses_through_the_key_id_table(store: Store) -> None:
    kid = bytes.fromhex(f"{4:032x}")  # title-4's key
    released = [fill_license_id(i, FILLED) for i in range(FILLED)
                if fill_layout(i, 50)[3] == 4 and fill_layout(i, 50)[2] == "issued"]
    assert len(released) >= 2
    assert store.release_by_key_ids([kid], system="widevine", now=1_780_000_000) == released
    assert store.release_by_key_ids([kid], system="widevine", now=1_780_000_000) == []


def test_admin_pages_are_limited_in_sql(store: Store) -> None:
    page = store.licenses(limit=7, account="acct-3")
    assert len(page) == 7 and all(r.account == "acct-3" for r in page)
    assert [r.issued_at for r in page] == sorted(r.issued_at for r in page)


def test_the_store_size_bench_measures_settled_stores(tmp_path: Path) -> None:
    """Regression: the fill stayed in the write-ahead log, so its checkpoint and writeback landed inside the
    measured grants (the official figure disagreed with settled copies of the same stores)."""
    stores = prepare(tmp_path, 3000, echo=lambda _: None)
    for store in stores:
        assert store.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1] == 0  # no frames left in the log
    assert [s.db.execute("SELECT count(*) FROM licenses").fetchone()[0] for s in stores] == [100, 3000]
    for store in stores:
        store.close()


def test_warming_reads_every_holder_and_changes_nothing(tmp_path: Path) -> None:
    """The steady-state figures follow a warm-up that must not write (a grant or a count it left would skew them)."""
    [empty, filled] = prepare(tmp_path, 3000, echo=lambda _: None)
    before = filled.db.execute("SELECT count(*), max(updated_at) FROM licenses").fetchone()
    changes = filled.db.conn.total_changes
    warm(filled, 10_000)
    assert filled.db.conn.total_changes == changes
    assert filled.db.execute("SELECT count(*), max(updated_at) FROM licenses").fetchone() == before
    for store in (empty, filled):
        store.close()


def test_bench_store_size_refuses_more_rounds_than_cold_holders() -> None:
    result = run_cli("--rounds", "201", module="license_server.bench_store")
    assert result.returncode == 2 and "--rounds must be between 1 and 200" in result.stderr


def test_bench_store_size_prints_ratios_as_json() -> None:
    result = run_cli("bench", "--store-size", "3000", "--duration", "1", "--requests", "160", "--devices", "2",
                     "--json", module="license_server.cli")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    store, served = report["store"], report["server"]
    assert store["store_size"] == 3000
    assert set(store["operations"]) == {"grant", "grant_temporary", "renewal", "cap_check", "admin_page",
                                        "grant_cold", "grant_temporary_cold"}
    assert all(row["ratio"] > 0 for row in store["operations"].values())
    assert served["store_size"] == 3000 and set(served["stores"]) == {"empty", "filled"}
    assert all(row["granted"] > 0 and row["errors"] == {} for row in served["stores"].values())
    assert set(served["ratios"]) == {"p50", "p99", "licenses_per_s"}


def test_bench_store_size_refuses_more_devices_than_the_empty_store_has_holders() -> None:
    result = run_cli("bench", "--store-size", "100", "--devices", "11", module="license_server.cli")
    assert result.returncode == 2 and "--devices must be at most 10 with --store-size" in result.stderr
    assert "median cost" not in result.stdout  # refused before anything ran


def test_the_fill_names_real_devices_and_spreads_each_holders_licenses(tmp_path: Path) -> None:
    result = run_cli("--fill", str(tmp_path / "s.db"), "--store-size", "400", "--holders", "10",
                     "--device", "d" * 32, "--now", "1800000000", module="license_server.bench_store")
    assert result.returncode == 0, result.stderr
    store = Store.open(tmp_path / "s.db")
    rows = store.db.execute("SELECT kind, state, count(*) FROM licenses WHERE device_id = ? AND account = 'acct-0' "
                            "GROUP BY kind, state", ("d" * 32,)).fetchall()
    store.close()
    # holder 0 is the named device; its 40 licenses mix both kinds and every state
    assert sorted(map(tuple, rows)) == [("persistent", "released", 10), ("persistent", "renewed", 10),
                                        ("temporary", "expired", 10), ("temporary", "issued", 10)]


def test_bench_fill_refuses_more_devices_than_holders(tmp_path: Path) -> None:
    result = run_cli("--fill", str(tmp_path / "s.db"), "--store-size", "10", "--holders", "1",
                     "--device", "a" * 32, "--device", "b" * 32, module="license_server.bench_store")
    assert result.returncode == 2 and "--holders must be at least 1" in result.stderr
    assert not (tmp_path / "s.db").exists()


def test_grants_through_the_servers_land_beside_the_holders_stored_licenses(tmp_path: Path) -> None:
    """The devices are the fill's first holders and their tokens name the holders' accounts, so each grant is
    counted against, and stored beside, the licenses the fill gave that device and account."""
    from device_emulator import bench_store_size

    result = bench_store_size.run(tmp_path, 2000, devices=2, keys_dir=None, duration=1.0, requests=80,
                                  concurrency=4, echo=lambda _: None)
    for name, size, per_holder in (("empty", 100, 10), ("filled", 2000, 1)):  # 2,000 over 10,000 holders: 1 each
        store = Store.open(tmp_path / name / "license-server.db")
        devices = [d for (d,) in store.db.execute("SELECT device_id FROM devices ORDER BY first_seen, rowid "
                                                   "LIMIT 2").fetchall()]
        held = sum(store.db.execute("SELECT count(*) FROM licenses WHERE device_id = ? AND account = ?",
                                    (device, f"acct-{i}")).fetchone()[0] for i, device in enumerate(devices))
        granted = store.db.execute("SELECT count(*) FROM licenses").fetchone()[0] - size  # warm-up included
        store.close()
        assert granted >= result["stores"][name]["granted"] > 0
        assert held == 2 * per_holder + granted  # every grant went to a fill's holder, device and account
