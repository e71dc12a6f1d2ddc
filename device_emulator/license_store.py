"""The device's own license store: persistent licenses in SQLite (sqlite-utils).

A stored license keeps exactly what the device needs to load it again offline:
the serialized request (the key-derivation context), the license message, its
signature and the session key wrapped to this device's key. Content keys are
never stored: loading goes through the TEE, so a row copied into another
device's store does not load there.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

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

    def public(self) -> dict[str, Any]:
        return {
            "key_set_id": self.key_set_id, "system": self.system, "content_id": self.content_id,
            "license_id": self.license_id, "type": self.kind, "version": self.version, "state": self.state,
            "policy": self.policy, "keys": self.keys, "received_at": self.received_at,
            "first_played_at": self.first_played_at,
        }


class LicenseStore:
    def __init__(self, path: Path | str) -> None:
        conn = sqlite3.connect(str(path), isolation_level=None)
        self.db = sqlite_utils.Database(conn)
        if str(path) != ":memory:":
            self.db.enable_wal()
            conn.execute("PRAGMA synchronous=FULL")  # first play and destruction must survive a crash
        self._migrate()

    def close(self) -> None:
        self.db.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in filter(str.strip, script.split(";")):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={number}")

    def save(self, lic: StoredLicense) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO licenses VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (lic.key_set_id, lic.system, lic.content_id, lic.license_id, lic.kind, lic.version, lic.state,
                 lic.request_msg, lic.license_msg, lic.signature, lic.wrapped_session_key,
                 json.dumps(lic.policy), json.dumps(lic.keys), lic.received_at, lic.license_start,
                 lic.first_played_at, lic.updated_at),
            )

    def get(self, key_set_id: str) -> StoredLicense | None:
        rows = list(self.db["licenses"].rows_where("key_set_id = ?", [key_set_id]))
        return _row(rows[0]) if rows else None

    def for_content(self, content_id: str, *, system: str | None = None) -> list[StoredLicense]:
        where, params = "content_id = ?", [content_id]
        if system:
            where, params = where + " AND system = ?", params + [system]
        return [_row(r) for r in self.db["licenses"].rows_where(where, params, order_by="received_at desc")]

    def all(self) -> list[StoredLicense]:
        return [_row(r) for r in self.db["licenses"].rows_where(order_by="received_at")]


def _row(row: dict[str, Any]) -> StoredLicense:
    data = dict(row)
    data["policy"] = json.loads(data["policy"])
    data["keys"] = json.loads(data["keys"])
    return StoredLicense(**data)
