"""The server's repository over SQLite (sqlite-utils), in WAL mode.

The core never sees SQL: it calls intent-named methods. Writes that must be
atomic (a grant with its replay record and audit entry) run inside one
``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager

import sqlite_utils

from license_server.core.entitlements import Holding, UsageSnapshot, month_start
from license_server.core.model import Grant
from license_server.errors import DrmError, ErrorCode
from license_server.sqlite_support import connect, migrate, transaction

MIGRATIONS: tuple[str, ...] = (
    # 1: foundation
    """
    CREATE TABLE devices (
        device_id TEXT PRIMARY KEY, system TEXT NOT NULL, system_id INTEGER NOT NULL,
        model TEXT NOT NULL, security_level TEXT NOT NULL, verification TEXT NOT NULL,
        first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL
    );
    CREATE TABLE licenses (
        license_id TEXT PRIMARY KEY, system TEXT NOT NULL, device_id TEXT,
        content_id TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
        version INTEGER NOT NULL, kids TEXT NOT NULL, tracks TEXT NOT NULL,
        policy TEXT NOT NULL, issued_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        released_at INTEGER, secrets TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX licenses_device ON licenses(device_id);
    CREATE INDEX licenses_content ON licenses(content_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, system TEXT NOT NULL,
        event TEXT NOT NULL, device_id TEXT, content_id TEXT, license_id TEXT,
        code TEXT, message TEXT
    );
    CREATE INDEX audit_license ON audit(license_id);
    CREATE TABLE seen_requests (request_key TEXT PRIMARY KEY, seen_at INTEGER NOT NULL);
    CREATE INDEX seen_requests_at ON seen_requests(seen_at);
    """,
    # 2: authorized media downloads (POST /downloads)
    """
    CREATE TABLE downloads (
        download_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, content_id TEXT NOT NULL,
        license_id TEXT NOT NULL, account TEXT NOT NULL, tier TEXT NOT NULL, quality TEXT NOT NULL,
        scheme TEXT NOT NULL, files INTEGER NOT NULL, bytes INTEGER NOT NULL,
        authorized_at INTEGER NOT NULL, expires_at INTEGER NOT NULL
    );
    CREATE INDEX downloads_device ON downloads(device_id);
    """,
    # 3: lifecycle (renewal restarts the license clock; first use seen by the server)
    """
    ALTER TABLE licenses ADD COLUMN license_start INTEGER;
    ALTER TABLE licenses ADD COLUMN first_used_at INTEGER;
    UPDATE licenses SET license_start = issued_at WHERE license_start IS NULL;
    """,
    # 4: entitlements (who a license was issued to) and single-use token ids
    """
    ALTER TABLE licenses ADD COLUMN account TEXT;
    ALTER TABLE licenses ADD COLUMN tier TEXT;
    ALTER TABLE licenses ADD COLUMN token_jti TEXT;
    CREATE INDEX licenses_account ON licenses(account);
    CREATE TABLE used_tokens (
        jti TEXT PRIMARY KEY, license_id TEXT, used_at INTEGER NOT NULL, expires_at INTEGER NOT NULL
    );
    CREATE INDEX used_tokens_expiry ON used_tokens(expires_at);
    """,
)

REPLAY_RETENTION = 3600  # seconds; well past the freshness window
TOKEN_RETENTION_SLACK = 3600  # spent token ids are kept this long past their token's exp


@dataclass(frozen=True)
class Holder:
    """Who a license is issued to, as the entitlement says."""

    account: str | None = None
    tier: str | None = None
    token_jti: str | None = None
    token_expires_at: int | None = None


UsageCheck = Callable[[UsageSnapshot], None]


@dataclass(frozen=True)
class LicenseRecord:
    license_id: str
    system: str
    device_id: str | None
    content_id: str
    kind: str
    state: str
    version: int
    kids: list[str]
    tracks: list[str]
    policy: dict[str, Any]
    issued_at: int
    updated_at: int
    released_at: int | None
    secrets: dict[str, str]
    license_start: int = 0
    first_used_at: int | None = None
    account: str | None = None
    tier: str | None = None
    token_jti: str | None = None

    def public(self) -> dict[str, Any]:
        """The record without secrets, for logs and APIs."""
        data = dict(self.__dict__)
        data.pop("secrets")
        return data


class Store:
    """Devices, licenses, replay records and the audit trail."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self._migrate()

    @classmethod
    def open(cls, path: Path | str) -> "Store":
        """Open (creating if needed) the store at ``path``; ``":memory:"`` for tests."""
        return cls(connect(path, synchronous="NORMAL"))

    @classmethod
    def memory(cls) -> "Store":
        return cls.open(":memory:")

    def close(self) -> None:
        self.db.conn.close()

    # -------------------------------------------------------------- plumbing

    def transaction(self) -> ContextManager[None]:
        return transaction(self.db)

    def _migrate(self) -> None:
        migrate(self.db, MIGRATIONS)

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    # ---------------------------------------------------------------- writes

    def record_grant(self, grant: Grant, *, system: str, request_key: str, secrets: dict[str, str], now: int,
                     holder: Holder | None = None, check_usage: UsageCheck | None = None) -> None:
        """Record an issued license with its device, replay key and audit entry, atomically.

        Raises ``REPLAYED_CHALLENGE`` (and writes nothing) if ``request_key`` was seen,
        ``TOKEN_REUSED`` if the holder's single-use token id was spent on another
        license. ``check_usage`` gets a snapshot of the account's and device's
        persistent licenses taken inside the same transaction, so concurrent
        grants cannot both take the last slot; it raises to refuse.
        """
        device = grant.device
        holder = holder or Holder()
        with self.transaction():
            self._claim_request(request_key, now)
            if holder.token_jti is not None:
                self._spend_token(holder.token_jti, grant.license_id, holder.token_expires_at or now, now)
            if check_usage is not None and device is not None:
                check_usage(self._usage_snapshot(holder.account, device.device_id, now))
            if device is not None:
                self.db.execute(
                    """INSERT INTO devices VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT(device_id) DO UPDATE SET last_seen=excluded.last_seen,
                       verification=excluded.verification, security_level=excluded.security_level""",
                    (device.device_id, system, device.system_id, device.model, device.security_level.value,
                     device.verification.value, now, now),
                )
            self.db.execute(
                "INSERT INTO licenses (license_id, system, device_id, content_id, kind, state, version, kids, tracks, "
                "policy, issued_at, updated_at, released_at, secrets, license_start, account, tier, token_jti) "
                "VALUES (?, ?, ?, ?, ?, 'issued', ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
                (
                    grant.license_id, system, device.device_id if device else None, grant.content_id,
                    grant.kind.value, grant.version,
                    json.dumps([k.kid.hex() for k in grant.keys]),
                    json.dumps([k.track.value for k in grant.keys]),
                    json.dumps(grant.policy.as_dict()), grant.issued_at, now, json.dumps(secrets), grant.issued_at,
                    holder.account, holder.tier, holder.token_jti,
                ),
            )
            self._audit(now, system, "grant", device.device_id if device else None, grant.content_id,
                        grant.license_id, None, f"{grant.kind.value}: {','.join(k.track.value for k in grant.keys)}")

    def record_refusal(self, error: DrmError, *, system: str, device_id: str | None, content_id: str | None,
                       license_id: str | None = None, now: int) -> None:
        with self.transaction():
            self._audit(now, system, "refusal", device_id, content_id, license_id, error.code.value, error.message)

    def record_clearkey_release(self, kids: list[bytes], *, now: int) -> list[str]:
        """Mark every issued Clear Key license holding any of ``kids`` as released, and audit it.

        Clear Key has neither license ids nor device identity, so the key ids name
        the licenses. Returns the released license ids; releasing again matches
        nothing and is still audited (the acknowledgement is idempotent).
        """
        wanted = {kid.hex() for kid in kids}
        with self.transaction():
            rows = self.db.execute(
                "SELECT license_id, content_id, kids FROM licenses WHERE system = 'clearkey' AND state = 'issued'"
            ).fetchall()
            released = [(lid, cid) for lid, cid, held in rows if wanted & set(json.loads(held))]
            for license_id, content_id in released:
                self.db.execute(
                    "UPDATE licenses SET state = 'released', released_at = ?, updated_at = ? WHERE license_id = ?",
                    (now, now, license_id),
                )
                self._audit(now, "clearkey", "release", None, content_id, license_id, None,
                            f"released by kids {','.join(sorted(wanted))}")
            if not released:
                self._audit(now, "clearkey", "release", None, None, None, None,
                            f"no issued license holds kids {','.join(sorted(wanted))}")
        return [license_id for license_id, _ in released]

    def record_lifecycle(self, license_id: str, *, event: str, state: str, now: int, system: str,
                         version: int | None = None, license_start: int | None = None,
                         policy: dict[str, Any] | None = None, first_used_at: int | None = None,
                         released: bool = False, message: str | None = None) -> None:
        """Apply a lifecycle transition decided by the core, with its audit entry, atomically."""
        with self.transaction():
            row = self.db.execute("SELECT device_id, content_id FROM licenses WHERE license_id = ?",
                                  (license_id,)).fetchone()
            if row is None:
                raise DrmError(ErrorCode.LICENSE_NOT_FOUND, f"no license {license_id}")
            self.db.execute(
                """UPDATE licenses SET state = ?, updated_at = ?,
                       version = COALESCE(?, version), license_start = COALESCE(?, license_start),
                       policy = COALESCE(?, policy), first_used_at = COALESCE(first_used_at, ?),
                       released_at = CASE WHEN ? THEN COALESCE(released_at, ?) ELSE released_at END
                   WHERE license_id = ?""",
                (state, now, version, license_start, json.dumps(policy) if policy is not None else None,
                 first_used_at, released, now, license_id),
            )
            self._audit(now, system, event, row[0], row[1], license_id, None, message)

    def mark_released(self, license_id: str, *, now: int, system: str, reason: str) -> bool:
        """Mark a license released (idempotent). Returns False if it already was."""
        record = self.license(license_id)
        if record is None:
            raise DrmError(ErrorCode.LICENSE_NOT_FOUND, f"no license {license_id}")
        if record.state == "released":
            return False
        self.record_lifecycle(license_id, event="release", state="released", now=now, system=system,
                              released=True, message=reason)
        return True

    def _spend_token(self, jti: str, license_id: str, expires_at: int, now: int) -> None:
        """A single-use token buys one license; its id is kept until the token expires."""
        self.db.execute("DELETE FROM used_tokens WHERE expires_at < ?", (now - TOKEN_RETENTION_SLACK,))
        try:
            self.db.execute("INSERT INTO used_tokens VALUES (?, ?, ?, ?)", (jti, license_id, now, expires_at))
        except sqlite3.IntegrityError as exc:
            raise DrmError(ErrorCode.TOKEN_REUSED, "this single-use token was already used") from exc

    def token_spent_on(self, jti: str) -> str | None:
        """The license a single-use token id was spent on ("" if none recorded), or None if unused."""
        row = self.db.execute("SELECT license_id FROM used_tokens WHERE jti = ?", (jti,)).fetchone()
        return None if row is None else (row[0] or "")

    def spend_token(self, jti: str, *, expires_at: int, now: int, purpose: str) -> None:
        """Spend a single-use token on something other than a license (e.g. a download)."""
        with self.transaction():
            self._spend_token(jti, purpose, expires_at, now)

    def _usage_snapshot(self, account: str | None, device_id: str, now: int) -> UsageSnapshot:
        rows = self.db.execute(
            """SELECT license_id, device_id, account, state, policy, license_start, issued_at FROM licenses
               WHERE kind = 'persistent' AND state NOT IN ('released', 'expired')
                 AND (device_id = ? OR (? IS NOT NULL AND account = ?))""",
            (device_id, account, account),
        ).fetchall()
        holdings = tuple(
            Holding(lid, dev, acct, state, json.loads(policy), start or issued, issued)
            for lid, dev, acct, state, policy, start, issued in rows
        )
        this_month = self.db.execute(
            "SELECT COUNT(*) FROM licenses WHERE kind = 'persistent' AND device_id = ? "
            "AND account IS ? AND issued_at >= ?",
            (device_id, account, month_start(now)),
        ).fetchone()[0]
        return UsageSnapshot(holdings, this_month)

    def _claim_request(self, request_key: str, now: int) -> None:
        self.db.execute("DELETE FROM seen_requests WHERE seen_at < ?", (now - REPLAY_RETENTION,))
        try:
            self.db.execute("INSERT INTO seen_requests VALUES (?, ?)", (request_key, now))
        except sqlite3.IntegrityError as exc:
            raise DrmError(ErrorCode.REPLAYED_CHALLENGE, "this challenge was already used") from exc

    def _audit(self, now: int, system: str, event: str, device_id: str | None, content_id: str | None,
               license_id: str | None, code: str | None, message: str | None) -> None:
        self.db.execute(
            "INSERT INTO audit (at, system, event, device_id, content_id, license_id, code, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (now, system, event, device_id, content_id, license_id, code, message),
        )

    # ----------------------------------------------------------------- reads

    def license(self, license_id: str) -> LicenseRecord | None:
        rows = list(self.db["licenses"].rows_where("license_id = ?", [license_id]))
        return _license(rows[0]) if rows else None

    def licenses(self, **filters: str) -> list[LicenseRecord]:
        allowed = {"device_id", "content_id", "state", "system", "kind", "account"}
        clauses = [f"{name} = :{name}" for name in filters if name in allowed and filters[name] is not None]
        where = " AND ".join(clauses) or None
        params = {k: v for k, v in filters.items() if k in allowed and v is not None}
        return [_license(r) for r in self.db["licenses"].rows_where(where, params, order_by="issued_at")]

    def devices(self) -> list[dict[str, Any]]:
        return list(self.db["devices"].rows_where(order_by="first_seen"))

    def device(self, device_id: str) -> dict[str, Any] | None:
        """One device row (as :meth:`devices` returns them), or ``None``."""
        rows = list(self.db["devices"].rows_where("device_id = ?", [device_id]))
        return rows[0] if rows else None

    def record_download(self, *, download_id: str, device_id: str, content_id: str, license_id: str,
                        account: str, tier: str, quality: str, scheme: str, files: int, total_bytes: int,
                        now: int, expires_at: int) -> None:
        """Record an authorized download and its audit entry, atomically."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO downloads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (download_id, device_id, content_id, license_id, account, tier, quality, scheme, files,
                 total_bytes, now, expires_at),
            )
            self._audit(now, "media", "download", device_id, content_id, license_id, None,
                        f"{quality} {scheme}: {files} files, {total_bytes} bytes")

    def downloads(self, *, device_id: str | None = None) -> list[dict[str, Any]]:
        if device_id:
            return list(self.db["downloads"].rows_where("device_id = ?", [device_id], order_by="authorized_at"))
        return list(self.db["downloads"].rows_where(order_by="authorized_at"))

    def audit_trail(self, *, license_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if license_id:
            return list(self.db["audit"].rows_where("license_id = ?", [license_id], order_by="id desc", limit=limit))
        return list(self.db["audit"].rows_where(order_by="id desc", limit=limit))

    def counts(self) -> dict[str, int]:
        return {table: self.db[table].count for table in ("devices", "licenses", "audit", "seen_requests")}


def _license(row: dict[str, Any]) -> LicenseRecord:
    return LicenseRecord(
        license_id=row["license_id"], system=row["system"], device_id=row["device_id"],
        content_id=row["content_id"], kind=row["kind"], state=row["state"], version=row["version"],
        kids=json.loads(row["kids"]), tracks=json.loads(row["tracks"]), policy=json.loads(row["policy"]),
        issued_at=row["issued_at"], updated_at=row["updated_at"], released_at=row["released_at"],
        secrets=json.loads(row["secrets"]),
        license_start=row.get("license_start") or row["issued_at"],
        first_used_at=row.get("first_used_at"),
        account=row.get("account"), tier=row.get("tier"), token_jti=row.get("token_jti"),
    )
