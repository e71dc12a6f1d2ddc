"""The server's repository over SQLite (sqlite-utils), in WAL mode.

Implements the core's storage port (:class:`~license_server.core.ports.LicenseRepository`):
the core never sees SQL, it calls intent-named methods. Each write the port
declares atomic runs inside one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from collections.abc import Iterator
from typing import Any, ContextManager

import sqlite_utils

from license_server.core import entitlements
from license_server.core.entitlements import month_start
from license_server.core.model import Grant, LicensePolicy
from license_server.core.ports import (
    DownloadRecord, Holder, Holding, LicenseRecord, TokenSpend, UsageRules, UsageSnapshot,
)
from license_server.errors import DrmError, ErrorCode
from license_server.sqlite_support import connect, migrate, savepoint, transaction

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
    # 5: device reports (PlayReady-style Acknowledge / Secure Stop), deduplicated by unique keys
    """
    CREATE TABLE reports (
        license_id TEXT NOT NULL, report_key TEXT NOT NULL, event TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (license_id, report_key)
    );
    CREATE TABLE report_subjects (
        license_id TEXT NOT NULL, once_key TEXT NOT NULL, at INTEGER NOT NULL,
        PRIMARY KEY (license_id, once_key)
    );
    """,
    # 6: flat cost as the store grows: every per-request query and admin page is served by an index
    # (list pages sort by issued_at inside the filter; Clear Key releases find licenses by key id)
    """
    DROP INDEX licenses_device;
    DROP INDEX licenses_content;
    DROP INDEX licenses_account;
    CREATE INDEX licenses_device ON licenses(device_id, issued_at);
    CREATE INDEX licenses_content ON licenses(content_id, issued_at);
    CREATE INDEX licenses_account ON licenses(account, issued_at);
    CREATE INDEX licenses_system ON licenses(system, issued_at);
    CREATE INDEX licenses_issued ON licenses(issued_at);
    CREATE INDEX devices_first_seen ON devices(first_seen);
    CREATE INDEX downloads_device_at ON downloads(device_id, authorized_at);
    CREATE INDEX downloads_at ON downloads(authorized_at);
    CREATE TABLE license_kids (kid TEXT NOT NULL, license_id TEXT NOT NULL, PRIMARY KEY (kid, license_id))
        WITHOUT ROWID;
    INSERT OR IGNORE INTO license_kids SELECT j.value, l.license_id FROM licenses l, json_each(l.kids) j
    """,
)

# Admin filters, most selective first (each of the first four has an index ending in issued_at).
_FILTERS = ("device_id", "account", "content_id", "system", "state", "kind")

REPLAY_RETENTION = 3600  # seconds; well past the freshness window
TOKEN_RETENTION_SLACK = 3600  # spent token ids are kept this long past their token's exp


__all__ = ["Holder", "LicenseRecord", "Store"]  # the record types live in the core's port


class Store:
    """Devices, licenses, replay records and the audit trail."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.in_batch = False  # set by the group-commit writer around a batch
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
        """One atomic write: a transaction, or a savepoint inside a group-commit batch (:mod:`store_writer`)."""
        return savepoint(self.db) if self.in_batch else transaction(self.db)

    def _migrate(self) -> None:
        migrate(self.db, MIGRATIONS)

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    # ---------------------------------------------------------------- writes

    def record_grant(self, grant: Grant, *, system: str, request_key: str, secrets: dict[str, str], now: int,
                     holder: Holder | None = None, caps: UsageRules | None = None) -> None:
        """Record an issued license with its device, replay key, token and caps, atomically (see the port)."""
        device = grant.device
        holder = holder or Holder()
        with self.transaction():
            self._claim_request(request_key, now)
            if holder.token_jti is not None:
                self._spend_token(TokenSpend(holder.token_jti, holder.token_expires_at or now, grant.license_id), now)
            if caps is not None and device is not None:
                entitlements.check_usage(caps, self._usage_snapshot(holder.account, device.device_id, now), now)
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
            self.db.conn.executemany("INSERT OR IGNORE INTO license_kids VALUES (?, ?)",
                                [(k.kid.hex(), grant.license_id) for k in grant.keys])
            self._audit(now, system, "grant", device.device_id if device else None, grant.content_id,
                        grant.license_id, None, f"{grant.kind.value}: {','.join(k.track.value for k in grant.keys)}")

    def record_refusal(self, error: DrmError, *, system: str, device_id: str | None, content_id: str | None,
                       license_id: str | None = None, now: int) -> None:
        with self.transaction():
            self._audit(now, system, "refusal", device_id, content_id, license_id, error.code.value, error.message)

    def release_by_key_ids(self, kids: list[bytes], *, system: str, now: int) -> list[str]:
        """Mark every issued license of ``system`` holding any of ``kids`` as released, and audit it.

        For Clear Key, which has neither license ids nor device identity, so the key ids
        name the licenses. Returns the released license ids; releasing again matches
        nothing and is still audited (the acknowledgement is idempotent).
        """
        wanted = {kid.hex() for kid in kids}
        marks = ", ".join("?" * len(wanted))
        with self.transaction():
            rows = self.db.execute(
                f"SELECT DISTINCT l.license_id, l.content_id, l.issued_at FROM license_kids k "
                f"CROSS JOIN licenses l ON l.license_id = k.license_id "
                f"WHERE k.kid IN ({marks}) AND l.system = ? AND l.state = 'issued' ORDER BY l.issued_at, l.rowid",
                (*sorted(wanted), system),
            ).fetchall() if wanted else []
            released = [(lid, cid) for lid, cid, _ in rows]
            for license_id, content_id in released:
                self.db.execute(
                    "UPDATE licenses SET state = 'released', released_at = ?, updated_at = ? WHERE license_id = ?",
                    (now, now, license_id),
                )
                self._audit(now, system, "release", None, content_id, license_id, None,
                            f"released by kids {','.join(sorted(wanted))}")
            if not released:
                self._audit(now, system, "release", None, None, None, None,
                            f"no issued license holds kids {','.join(sorted(wanted))}")
        return [license_id for license_id, _ in released]

    def record_lifecycle(self, license_id: str, *, event: str, state: str, now: int, system: str,
                         version: int | None = None, license_start: int | None = None,
                         policy: LicensePolicy | None = None, first_used_at: int | None = None,
                         released: bool = False, message: str | None = None) -> None:
        """Apply a lifecycle transition decided by the core, with its audit entry, atomically."""
        with self.transaction():
            self._lifecycle(license_id, event=event, state=state, now=now, system=system, version=version,
                            license_start=license_start, policy=policy, first_used_at=first_used_at,
                            released=released, message=message)

    def _lifecycle(self, license_id: str, *, event: str, state: str, now: int, system: str,
                   version: int | None = None, license_start: int | None = None,
                   policy: LicensePolicy | None = None, first_used_at: int | None = None,
                   released: bool = False, message: str | None = None) -> None:
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
            (state, now, version, license_start, json.dumps(policy.as_dict()) if policy is not None else None,
             first_used_at, released, now, license_id),
        )
        self._audit(now, system, event, row[0], row[1], license_id, None, message)

    def mark_released(self, license_id: str, *, now: int, system: str, reason: str) -> bool:
        """Mark a license released (idempotent), atomically. Returns False if it already was."""
        with self.transaction():
            row = self.db.execute("SELECT state FROM licenses WHERE license_id = ?", (license_id,)).fetchone()
            if row is None:
                raise DrmError(ErrorCode.LICENSE_NOT_FOUND, f"no license {license_id}")
            if row[0] == "released":
                return False
            self._lifecycle(license_id, event="release", state="released", now=now, system=system,
                            released=True, message=reason)
        return True

    def record_report(self, license_id: str, *, system: str, event: str, report_key: str, now: int,
                      message: str, once_key: str | None = None, first_used_at: int | None = None) -> bool:
        """Record a device report, deduplicated by its unique keys, atomically (see the port)."""
        with self.transaction():
            row = self.db.execute("SELECT state FROM licenses WHERE license_id = ?", (license_id,)).fetchone()
            if row is None:
                raise DrmError(ErrorCode.LICENSE_NOT_FOUND, f"no license {license_id}")
            seen = self.db.execute("SELECT 1 FROM reports WHERE license_id = ? AND report_key = ?",
                                   (license_id, report_key)).fetchone()
            if seen is not None:
                raise DrmError(ErrorCode.REPLAYED_CHALLENGE, "this report was already received")
            if once_key is not None:
                try:
                    self.db.execute("INSERT INTO report_subjects VALUES (?, ?, ?)", (license_id, once_key, now))
                except sqlite3.IntegrityError:
                    return False  # the same report resent (its answer was lost): acknowledged, not counted
            self.db.execute("INSERT INTO reports VALUES (?, ?, ?, ?)", (license_id, report_key, event, now))
            self._lifecycle(license_id, event=event, state=row[0], now=now, system=system,
                            first_used_at=first_used_at, message=message)
        return True

    def _spend_token(self, spend: TokenSpend, now: int) -> None:
        """A single-use token buys one license; its id is kept until the token expires."""
        if spend.same_license_ok:
            spent_on = self.token_spent_on(spend.jti)
            if spent_on == spend.license_id:
                return
            if spent_on is not None:
                raise DrmError(ErrorCode.TOKEN_REUSED, "this single-use token was used for another license")
        self.db.execute("DELETE FROM used_tokens WHERE expires_at < ?", (now - TOKEN_RETENTION_SLACK,))
        try:
            self.db.execute("INSERT INTO used_tokens VALUES (?, ?, ?, ?)",
                            (spend.jti, spend.license_id, now, spend.expires_at))
        except sqlite3.IntegrityError as exc:
            raise DrmError(ErrorCode.TOKEN_REUSED, "this single-use token was already used") from exc

    def token_spent_on(self, jti: str) -> str | None:
        """The license a single-use token id was spent on ("" if none recorded), or None if unused."""
        row = self.db.execute("SELECT license_id FROM used_tokens WHERE jti = ?", (jti,)).fetchone()
        return None if row is None else (row[0] or "")

    def _usage_snapshot(self, account: str | None, device_id: str, now: int) -> UsageSnapshot:
        # Two plain equality terms (no "? IS NOT NULL" guard) so SQLite serves the OR from both indexes.
        holder = "device_id = ?" if account is None else "(device_id = ? OR account = ?)"
        rows = self.db.execute(
            f"""SELECT license_id, device_id, account, state, policy, license_start, issued_at FROM licenses
               WHERE {holder} AND kind = 'persistent' AND state NOT IN ('released', 'expired')""",
            (device_id,) if account is None else (device_id, account),
        ).fetchall()
        holdings = tuple(
            Holding(lid, dev, acct, state, LicensePolicy.from_dict(json.loads(policy)), start or issued, issued)
            for lid, dev, acct, state, policy, start, issued in rows
        )
        this_month = self.db.execute(
            "SELECT COUNT(*) FROM licenses INDEXED BY licenses_device WHERE kind = 'persistent' AND device_id = ? "
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

    def licenses(self, *, limit: int | None = None, **filters: str | None) -> list[LicenseRecord]:
        """Licenses matching every given filter, oldest first, at most ``limit`` of them."""
        return list(self.iter_licenses(limit=limit, **filters))

    def iter_licenses(self, *, limit: int | None = None, **filters: str | None) -> Iterator[LicenseRecord]:
        """:meth:`licenses` lazily: rows are read as they are consumed (admin pages stop early)."""
        params = {k: v for k, v in filters.items() if k in _FILTERS and v is not None}
        # Only the most selective filter may use its index (the others are written "+column", which
        # SQLite never serves from an index): without statistics it could pick ``system`` over ``device_id``.
        best = next((name for name in _FILTERS if name in params), None)
        clauses = [f"{'' if name == best else '+'}{name} = :{name}" for name in params]
        where = " AND ".join(clauses) or None
        for row in self.db["licenses"].rows_where(where, params, order_by="issued_at", limit=limit):
            yield _license(row)

    def devices(self) -> list[dict[str, Any]]:
        return list(self.db["devices"].rows_where(order_by="first_seen"))

    def device(self, device_id: str) -> dict[str, Any] | None:
        """One device row (as :meth:`devices` returns them), or ``None``."""
        rows = list(self.db["devices"].rows_where("device_id = ?", [device_id]))
        return rows[0] if rows else None

    def record_download(self, download: DownloadRecord, *, token: TokenSpend | None = None) -> None:
        """Record an authorized download with its single-use token check and audit entry, atomically."""
        d, now = download, download.authorized_at
        with self.transaction():
            if token is not None:
                self._spend_token(token, now)
            self.db.execute(
                "INSERT INTO downloads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (d.download_id, d.device_id, d.content_id, d.license_id, d.account, d.tier, d.quality, d.scheme,
                 d.files, d.total_bytes, now, d.expires_at),
            )
            self._audit(now, "media", "download", d.device_id, d.content_id, d.license_id, None,
                        f"{d.quality} {d.scheme}: {d.files} files, {d.total_bytes} bytes")

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
        kids=json.loads(row["kids"]), tracks=json.loads(row["tracks"]),
        policy=LicensePolicy.from_dict(json.loads(row["policy"])),
        issued_at=row["issued_at"], updated_at=row["updated_at"], released_at=row["released_at"],
        secrets=json.loads(row["secrets"]),
        license_start=row.get("license_start") or row["issued_at"],
        first_used_at=row.get("first_used_at"),
        account=row.get("account"), tier=row.get("tier"), token_jti=row.get("token_jti"),
    )
