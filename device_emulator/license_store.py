"""The device's own license store: persistent licenses in SQLite (sqlite-utils).

A stored license keeps exactly what the device needs to load it again offline:
the serialized request (the key-derivation context), the license message, its
signature and the session key wrapped to this device's key. Content keys are
never stored: loading goes through the TEE, so a row copied into another
device's store does not load there.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from license_server.sqlite_support import connect, migrate, transaction

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE licenses (
        key_set_id TEXT PRIMARY KEY, system TEXT NOT NULL, content_id TEXT NOT NULL,
        license_id TEXT NOT NULL, kind TEXT NOT NULL, version INTEGER NOT NULL,
        state TEXT NOT NULL, request_msg BLOB NOT NULL, license_msg BLOB NOT NULL,
        signature BLOB NOT NULL, wrapped_session_key BLOB NOT NULL,
        policy TEXT NOT NULL, keys TEXT NOT NULL, received_at INTEGER NOT NULL,
        license_start INTEGER NOT NULL, first_played_at INTEGER, updated_at INTEGER NOT NULL
    );
    CREATE INDEX licenses_content ON licenses(content_id);
    """,
    # 2: lifecycle: renewals, where to renew/release, destruction records, secure clock
    """
    ALTER TABLE licenses ADD COLUMN renewal_msg BLOB;
    ALTER TABLE licenses ADD COLUMN renewal_signature BLOB;
    ALTER TABLE licenses ADD COLUMN license_url TEXT;
    CREATE TABLE destruction_records (
        key_set_id TEXT PRIMARY KEY, system TEXT NOT NULL, content_id TEXT NOT NULL,
        license_id TEXT NOT NULL, destroyed_at INTEGER NOT NULL, release_body BLOB,
        ack_verifier BLOB, license_url TEXT, attempts INTEGER NOT NULL DEFAULT 0,
        last_attempt_at INTEGER, last_error TEXT
    );
    CREATE TABLE secure_clock (
        id INTEGER PRIMARY KEY CHECK (id = 1), high_water INTEGER NOT NULL,
        rollback_detected_at INTEGER, synced_at INTEGER
    );
    """,
    # 3: end-of-playback reports (PlayReady Secure Stop) waiting for the server
    """
    CREATE TABLE playback_reports (
        report_id TEXT PRIMARY KEY, system TEXT NOT NULL, content_id TEXT NOT NULL,
        license_id TEXT NOT NULL, payload BLOB NOT NULL, license_url TEXT, created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, last_attempt_at INTEGER, last_error TEXT
    );
    """,
)


@dataclass(frozen=True)
class StoredLicense:
    key_set_id: str
    system: str
    content_id: str
    license_id: str
    kind: str
    version: int
    state: str
    request_msg: bytes
    license_msg: bytes
    signature: bytes
    wrapped_session_key: bytes
    policy: dict[str, Any]
    keys: list[dict[str, Any]]
    received_at: int
    license_start: int
    first_played_at: int | None
    updated_at: int
    renewal_msg: bytes | None = None
    renewal_signature: bytes | None = None
    license_url: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "key_set_id": self.key_set_id, "system": self.system, "content_id": self.content_id,
            "license_id": self.license_id, "type": self.kind, "version": self.version, "state": self.state,
            "policy": self.policy, "keys": self.keys, "received_at": self.received_at,
            "first_played_at": self.first_played_at,
        }


class LicenseStore:
    def __init__(self, path: Path | str) -> None:
        # synchronous=FULL: a first play or a destruction record must survive a crash.
        self.db = connect(path, synchronous="FULL")
        self._migrate()

    def close(self) -> None:
        self.db.conn.close()

    def transaction(self) -> AbstractContextManager[None]:
        return transaction(self.db)

    def _migrate(self) -> None:
        migrate(self.db, MIGRATIONS)

    def save(self, lic: StoredLicense) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO licenses VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (lic.key_set_id, lic.system, lic.content_id, lic.license_id, lic.kind, lic.version, lic.state,
                 lic.request_msg, lic.license_msg, lic.signature, lic.wrapped_session_key,
                 json.dumps(lic.policy), json.dumps(lic.keys), lic.received_at, lic.license_start,
                 lic.first_played_at, lic.updated_at, lic.renewal_msg, lic.renewal_signature, lic.license_url),
            )

    # ------------------------------------------------------------- lifecycle

    def record_first_play(self, key_set_id: str, now: int) -> int:
        """Durably record the first play (once); returns the recorded time."""
        with self.transaction():
            self.db.execute("UPDATE licenses SET first_played_at = COALESCE(first_played_at, ?), updated_at = ? "
                            "WHERE key_set_id = ?", (now, now, key_set_id))
        lic = self.get(key_set_id)
        assert lic is not None and lic.first_played_at is not None
        return lic.first_played_at

    def apply_renewal(self, key_set_id: str, *, version: int, license_start: int, policy: dict[str, Any],
                      renewal_msg: bytes, renewal_signature: bytes, now: int) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE licenses SET version = ?, license_start = ?, policy = ?, renewal_msg = ?, "
                "renewal_signature = ?, updated_at = ? WHERE key_set_id = ?",
                (version, license_start, json.dumps(policy), renewal_msg, renewal_signature, now, key_set_id))

    def destroy(self, lic: StoredLicense, *, release_body: bytes | None, ack_verifier: bytes | None,
                now: int) -> None:
        """Destroy a license's keys and keep a record of the destruction, in one transaction."""
        with self.transaction():
            self.db.execute(
                "UPDATE licenses SET state = 'removed', wrapped_session_key = X'', updated_at = ? "
                "WHERE key_set_id = ?", (now, lic.key_set_id))
            self.db.execute(
                "INSERT OR REPLACE INTO destruction_records (key_set_id, system, content_id, license_id, "
                "destroyed_at, release_body, ack_verifier, license_url) VALUES (?,?,?,?,?,?,?,?)",
                (lic.key_set_id, lic.system, lic.content_id, lic.license_id, now, release_body, ack_verifier,
                 lic.license_url))

    def pending_destructions(self) -> list[dict[str, Any]]:
        return list(self.db["destruction_records"].rows_where(order_by="destroyed_at"))

    def release_attempted(self, key_set_id: str, *, now: int, error: str) -> None:
        with self.transaction():
            self.db.execute("UPDATE destruction_records SET attempts = attempts + 1, last_attempt_at = ?, "
                            "last_error = ? WHERE key_set_id = ?", (now, error, key_set_id))

    def release_acknowledged(self, key_set_id: str) -> None:
        """The server acknowledged the release: purge the record and the license."""
        with self.transaction():
            self.db.execute("DELETE FROM destruction_records WHERE key_set_id = ?", (key_set_id,))
            self.db.execute("DELETE FROM licenses WHERE key_set_id = ?", (key_set_id,))

    # ----------------------------------------------- end-of-playback reports

    def add_playback_report(self, *, report_id: str, system: str, content_id: str, license_id: str,
                            payload: bytes, license_url: str | None, now: int) -> None:
        """Keep an end-of-playback report (e.g. a Secure Stop) durably until the server records it."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO playback_reports (report_id, system, content_id, license_id, payload, license_url, "
                "created_at) VALUES (?,?,?,?,?,?,?)", (report_id, system, content_id, license_id, payload,
                                                       license_url, now))

    def pending_playback_reports(self) -> list[dict[str, Any]]:
        return list(self.db["playback_reports"].rows_where(order_by="created_at"))

    def playback_report_attempted(self, report_id: str, *, now: int, error: str) -> None:
        with self.transaction():
            self.db.execute("UPDATE playback_reports SET attempts = attempts + 1, last_attempt_at = ?, "
                            "last_error = ? WHERE report_id = ?", (now, error, report_id))

    def playback_report_acknowledged(self, report_id: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM playback_reports WHERE report_id = ?", (report_id,))

    def secure_clock(self) -> dict[str, Any] | None:
        rows = list(self.db["secure_clock"].rows_where("id = 1"))
        return rows[0] if rows else None

    def observe_time(self, now: int, *, tolerance: int) -> bool:
        """Advance the trusted high-water mark; return True if the clock went back past tolerance.

        A detected rollback is persisted and stays until :meth:`sync_time`.
        """
        with self.transaction():
            row = self.db.execute("SELECT high_water, rollback_detected_at FROM secure_clock WHERE id = 1").fetchone()
            if row is None:
                self.db.execute("INSERT INTO secure_clock (id, high_water) VALUES (1, ?)", (now,))
                return False
            high_water, detected = row
            if detected is not None:
                return True
            if now < high_water - tolerance:
                self.db.execute("UPDATE secure_clock SET rollback_detected_at = ? WHERE id = 1", (now,))
                return True
            if now > high_water:
                self.db.execute("UPDATE secure_clock SET high_water = ? WHERE id = 1", (now,))
            return False

    def sync_time(self, server_now: int) -> None:
        """Trusted time from the server: reset the high-water mark and clear a rollback."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO secure_clock (id, high_water, synced_at) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE "
                "SET high_water = excluded.high_water, rollback_detected_at = NULL, synced_at = excluded.synced_at",
                (server_now, server_now))

    def get(self, key_set_id: str) -> StoredLicense | None:
        rows = list(self.db["licenses"].rows_where("key_set_id = ?", [key_set_id]))
        return _row(rows[0]) if rows else None

    def for_content(self, content_id: str, *, system: str | None = None,
                    license_id: str | None = None) -> list[StoredLicense]:
        """The title's licenses, newest first: by receipt time, then by insertion order (never a tie).

        ``license_id`` keeps only the one with that license id or key set id.
        """
        where, params = "content_id = ?", [content_id]
        if system:
            where, params = where + " AND system = ?", params + [system]
        if license_id:
            where, params = where + " AND (license_id = ? OR key_set_id = ?)", params + [license_id, license_id]
        return [_row(r) for r in self.db["licenses"].rows_where(where, params, order_by="received_at desc, rowid desc")]

    def all(self) -> list[StoredLicense]:
        return [_row(r) for r in self.db["licenses"].rows_where(order_by="received_at, rowid")]


def _row(row: dict[str, Any]) -> StoredLicense:
    data = dict(row)
    data["policy"] = json.loads(data["policy"])
    data["keys"] = json.loads(data["keys"])
    return StoredLicense(**data)
