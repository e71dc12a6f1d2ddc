"""The store's decisions in SQL, shared by the SQLite and PostgreSQL backends.

:class:`SqlStore` implements the core's storage port
(:class:`~license_server.core.ports.LicenseRepository`), the admin reads and the audit
retention once, against a small :class:`~license_server.store_backend.SqlBackend`: the
backends differ only in connections, transactions, cross-process locking, placeholders
and DDL. Each write the port declares atomic runs inside one backend transaction.

Concurrency (see docs/store.md): replay keys, single-use token ids and report keys are
primary keys inserted with ``ON CONFLICT DO NOTHING`` (the loser of a race sees no row
inserted); caps are decided under :meth:`SqlBackend.serialize` on the device and the account;
lifecycle writes lock the license row (:attr:`SqlBackend.for_update`). On SQLite every write
transaction is ``BEGIN IMMEDIATE``, so all of these are already serial.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from license_server.core import entitlements
from license_server.core.entitlements import month_start
from license_server.core.model import Grant, LicenseKind, LicensePolicy
from license_server.core.ports import (
    DownloadRecord,
    Holder,
    LicenseRecord,
    TokenSpend,
    UsageRules,
    UsageSnapshot,
)
from license_server.core.streams import StreamStart
from license_server.errors import DrmError, ErrorCode
from license_server.store_backend import SqlBackend, dicts
from license_server.store_documents import SqlStateDocuments
from license_server.store_streams import SqlStreamSessions

# Admin filters, most selective first (each of the first four has an index ending in issued_at).
_FILTERS = ("device_id", "account", "content_id", "system", "state", "kind")

REPLAY_RETENTION = 3600  # seconds; well past the freshness window
TOKEN_RETENTION_SLACK = 3600  # spent token ids are kept this long past their token's exp
LICENSE_FILTERS = frozenset({"device_id", "content_id", "state", "system", "kind", "account"})
"""The columns license reads may filter on (equality)."""
LICENSE_SUMMARY = ("rowid", "license_id", "system", "device_id", "content_id", "kind", "state", "version", "tracks",
                   "issued_at", "updated_at", "account")


__all__ = ["AuditRetention", "Holder", "LicenseRecord", "SqlStore"]  # the record types live in the core's port


SLOT_HOLDING = "kind = 'persistent' AND state IN ('issued', 'in_use', 'renewed')"
"""The licenses that hold a cap slot while their slot end is ahead: the slot indexes' condition (migration 10)."""


@dataclass(frozen=True)
class AuditRetention:
    """How many refusal audit rows to keep, and for how long (0: no limit).

    Refusals are the audit rows any client can cause, so they are the ones bounded; grants
    and lifecycle events are the license history and stay. Purging runs on write, every
    ``check_every`` audit writes, deleting at most ``batch`` rows each time (bounded cost
    per request, by indexed time and rowid).
    """

    max_rows: int = 100_000
    max_age: int = 30 * 86400
    check_every: int = 64
    batch: int = 1000


@lru_cache(maxsize=1024)
def policy_json(policy: LicensePolicy) -> str:
    """A policy's stored JSON form: a server issues a handful of distinct policies, so each is encoded once."""
    return json.dumps(policy.as_dict())


class SqlStore(SqlStateDocuments, SqlStreamSessions):
    """Devices, licenses, replay records, stream sessions, the audit trail and the namespace's state documents."""

    sql: SqlBackend
    retention: AuditRetention
    _audit_writes: int

    def __init__(self, sql: SqlBackend, *, retention: AuditRetention | None = None) -> None:
        self.sql = sql
        self.retention = retention or AuditRetention()
        self._audit_writes = 0
        self._replay_purged_at: int | None = None

    def close(self) -> None:
        self.sql.close()

    def transaction(self) -> AbstractContextManager[None]:
        """One atomic write."""
        return self.sql.transaction()

    @property
    def schema_version(self) -> int:
        """The number of migrations applied (the same numbering on every backend)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- writes

    def record_grant(self, grant: Grant, *, system: str, request_key: str | None, secrets: dict[str, str], now: int,
                     holder: Holder | None = None, caps: UsageRules | None = None,
                     stream: StreamStart | None = None) -> None:
        """Record an issued license with its device, replay key, token, caps and stream session, atomically."""
        device = grant.device
        holder = holder or Holder()
        with self.transaction():
            if request_key is not None:
                self._claim_request(request_key, now)
            if holder.token_jti is not None:
                self._spend_token(TokenSpend(holder.token_jti, holder.token_expires_at or now, grant.license_id), now)
            if device is not None:  # caps are decided one grant at a time per device and per account
                accounts = [f"account:{holder.account}"] if holder.account else []
                self.sql.serialize(f"device:{device.device_id}", *accounts)
            if caps is not None and device is not None:
                entitlements.check_usage(caps, self._usage_snapshot(holder.account, device.device_id, now))
            if device is not None:
                self.sql.execute(
                    """INSERT INTO devices VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT(device_id) DO UPDATE SET last_seen=excluded.last_seen,
                       verification=excluded.verification, security_level=excluded.security_level""",
                    (device.device_id, system, device.system_id, device.model, device.security_level.value,
                     device.verification.value, now, now),
                )
            self.sql.execute(
                "INSERT INTO licenses (license_id, system, device_id, content_id, kind, state, version, kids, tracks, "
                "policy, issued_at, updated_at, released_at, secrets, license_start, account, tier, token_jti, "
                "slot_end) VALUES (?, ?, ?, ?, ?, 'issued', ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
                (
                    grant.license_id, system, device.device_id if device else None, grant.content_id,
                    grant.kind.value, grant.version,
                    json.dumps([k.kid.hex() for k in grant.keys]),
                    json.dumps([k.track.value for k in grant.keys]),
                    policy_json(grant.policy), grant.issued_at, now, json.dumps(secrets), grant.issued_at,
                    holder.account, holder.tier, holder.token_jti,
                    entitlements.slot_end(grant.policy, grant.issued_at) if grant.kind is LicenseKind.PERSISTENT
                    else None,
                ),
            )
            if grant.kind is LicenseKind.PERSISTENT and device is not None:  # the monthly allowance's count
                self.sql.execute(
                    "INSERT INTO monthly_grants VALUES (?, ?, ?, 1) ON CONFLICT (device_id, account, month) "
                    "DO UPDATE SET grants = monthly_grants.grants + 1",
                    (device.device_id, holder.account or "", month_start(grant.issued_at)))
            kid_rows = {(k.kid.hex(), grant.license_id) for k in grant.keys}
            if kid_rows:  # one statement for every key id
                self.sql.execute("INSERT INTO license_kids VALUES " + ", ".join(["(?, ?)"] * len(kid_rows))
                                 + " ON CONFLICT DO NOTHING", [v for row in sorted(kid_rows) for v in row])
            if stream is not None:
                self._open_stream(grant, stream, now)
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
            rows = self.sql.execute(
                f"SELECT DISTINCT l.license_id, l.content_id, l.issued_at, l.rowid FROM license_kids k "
                f"{self.sql.join_in_order} licenses l ON l.license_id = k.license_id "
                f"WHERE k.kid IN ({marks}) AND l.system = ? AND l.state = 'issued' ORDER BY l.issued_at, l.rowid",
                (*sorted(wanted), system),
            ).fetchall() if wanted else []
            released = []
            for license_id, content_id, _, _ in rows:
                if not self.sql.execute(  # state re-checked: a concurrent release may have won this license
                        "UPDATE licenses SET state = 'released', released_at = ?, updated_at = ? "
                        "WHERE license_id = ? AND state = 'issued'", (now, now, license_id)).rowcount:
                    continue
                released.append((license_id, content_id))
                self._audit(now, system, "release", None, content_id, license_id, None,
                            f"released by kids {','.join(sorted(wanted))}")
            if not released:
                self._audit(now, system, "release", None, None, None, None,
                            f"no issued license holds kids {','.join(sorted(wanted))}")
        return [license_id for license_id, _ in released]

    def record_lifecycle(self, license_id: str, *, event: str, state: str, now: int, system: str,
                         version: int | None = None, license_start: int | None = None,
                         policy: LicensePolicy | None = None, first_used_at: int | None = None,
                         released: bool = False, message: str | None = None,
                         request_key: str | None = None, stream_heartbeat: bool = False) -> None:
        """Apply a lifecycle transition decided by the core, with its audit entry, atomically (see the port)."""
        with self.transaction():
            if request_key is not None:
                self._claim_request(request_key, now)
            if stream_heartbeat:
                self._stream_heartbeat(license_id, now)
            self._lifecycle(license_id, event=event, state=state, now=now, system=system, version=version,
                            license_start=license_start, policy=policy, first_used_at=first_used_at,
                            released=released, message=message)

    def _lifecycle(self, license_id: str, *, event: str, state: str, now: int, system: str,
                   version: int | None = None, license_start: int | None = None,
                   policy: LicensePolicy | None = None, first_used_at: int | None = None,
                   released: bool = False, message: str | None = None) -> None:
        row = self.sql.execute("SELECT device_id, content_id, policy, license_start, issued_at FROM licenses "
                               f"WHERE license_id = ?{self.sql.for_update}", (license_id,)).fetchone()
        if row is None:
            raise DrmError(ErrorCode.LICENSE_NOT_FOUND, f"no license {license_id}")
        slot_end = None  # moves with the license's start or policy
        if license_start is not None or policy is not None:
            slot_end = entitlements.slot_end(policy if policy is not None else json.loads(row[2]),
                                             license_start if license_start is not None else row[3] or row[4])
        self.sql.execute(
            """UPDATE licenses SET state = ?, updated_at = ?,
                   version = COALESCE(?, version), license_start = COALESCE(?, license_start),
                   policy = COALESCE(?, policy), first_used_at = COALESCE(first_used_at, ?),
                   slot_end = COALESCE(?, slot_end),
                   released_at = CASE WHEN ? THEN COALESCE(released_at, ?) ELSE released_at END
               WHERE license_id = ?""",
            (state, now, version, license_start, policy_json(policy) if policy is not None else None,
             first_used_at, slot_end, released, now, license_id),
        )
        self._audit(now, system, event, row[0], row[1], license_id, None, message)

    def mark_released(self, license_id: str, *, now: int, system: str, reason: str,
                      request_key: str | None = None) -> bool:
        """Mark a license released (idempotent), atomically. Returns False if it already was (see the port)."""
        with self.transaction():
            row = self.sql.execute(f"SELECT state FROM licenses WHERE license_id = ?{self.sql.for_update}",
                                   (license_id,)).fetchone()
            if row is None:
                raise DrmError(ErrorCode.LICENSE_NOT_FOUND, f"no license {license_id}")
            if request_key is not None and not self._claim_once(request_key, now):
                return False
            if row[0] == "released":
                return False
            self._lifecycle(license_id, event="release", state="released", now=now, system=system,
                            released=True, message=reason)
            self._close_license_stream(license_id, now, reason)
        return True

    def record_report(self, license_id: str, *, system: str, event: str, report_key: str, now: int,
                      message: str, once_key: str | None = None, first_used_at: int | None = None) -> bool:
        """Record a device report, deduplicated by its unique keys, atomically (see the port)."""
        with self.transaction():
            row = self.sql.execute(f"SELECT state FROM licenses WHERE license_id = ?{self.sql.for_update}",
                                   (license_id,)).fetchone()
            if row is None:
                raise DrmError(ErrorCode.LICENSE_NOT_FOUND, f"no license {license_id}")
            seen = self.sql.execute("SELECT 1 FROM reports WHERE license_id = ? AND report_key = ?",
                                   (license_id, report_key)).fetchone()
            if seen is not None:
                raise DrmError(ErrorCode.REPLAYED_CHALLENGE, "this report was already received")
            if once_key is not None and not self.sql.execute(
                    "INSERT INTO report_subjects VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (license_id, once_key, now)).rowcount:
                return False  # the same report resent (its answer was lost): acknowledged, not counted
            self.sql.execute("INSERT INTO reports VALUES (?, ?, ?, ?)", (license_id, report_key, event, now))
            if event == "secure_stop":
                self._close_license_stream(license_id, now, "secure stop")
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
        if self.sql.try_serialize("purge:used_tokens"):
            self.sql.execute("DELETE FROM used_tokens WHERE expires_at < ?", (now - TOKEN_RETENTION_SLACK,))
        if not self.sql.execute("INSERT INTO used_tokens VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                (spend.jti, spend.license_id, now, spend.expires_at)).rowcount:
            raise DrmError(ErrorCode.TOKEN_REUSED, "this single-use token was already used")

    def token_spent_on(self, jti: str) -> str | None:
        """The license a single-use token id was spent on ("" if none recorded), or None if unused."""
        row = self.sql.execute("SELECT license_id FROM used_tokens WHERE jti = ?", (jti,)).fetchone()
        return None if row is None else (row[0] or "")

    def _usage_snapshot(self, account: str | None, device_id: str, now: int) -> UsageSnapshot:
        """Active holdings counted over the entries of the slot indexes (migration 10), and this month's
        grants read from their counter (migration 11): no holding is read back and no policy parsed,
        however many licenses the device or account holds."""
        active = f"{SLOT_HOLDING} AND slot_end > ?"
        on_device = self.sql.execute(
            f"SELECT COUNT(*) FROM licenses{self.sql.hint('licenses_slots_device')} WHERE device_id = ? AND {active}",
            (device_id, now)).fetchone()[0]
        devices = frozenset(row[0] for row in self.sql.execute(
            f"SELECT DISTINCT device_id FROM licenses{self.sql.hint('licenses_slots_account')} "
            f"WHERE account = ? AND {active}", (account, now)).fetchall()) if account is not None else frozenset()
        this_month = self.sql.execute(  # months after now's too: a test clock may have been set back
            "SELECT COALESCE(SUM(grants), 0) FROM monthly_grants WHERE device_id = ? AND account = ? AND month >= ?",
            (device_id, account or "", month_start(now)),
        ).fetchone()[0]
        return UsageSnapshot(on_device, devices, this_month)

    def fill_slot_ends(self, batch: int = 5000) -> int:
        """Compute the slot end of persistent licenses stored before migration 10 (once, at open); how many."""
        filled = 0
        if self.sql.execute(f"SELECT 1 FROM licenses{self.sql.hint('licenses_slot_unknown')} "
                            "WHERE kind = 'persistent' AND slot_end IS NULL LIMIT 1").fetchone() is None:
            return 0  # the usual case: nothing to fill, and no write transaction taken
        while True:
            with self.transaction():
                rows = self.sql.execute(  # an empty partial index once filled, so every open can ask
                    f"SELECT license_id, policy, license_start, issued_at FROM licenses"
                    f"{self.sql.hint('licenses_slot_unknown')} WHERE kind = 'persistent' AND slot_end IS NULL "
                    "LIMIT ?", (batch,)).fetchall()
                for license_id, policy, start, issued in rows:
                    self.sql.execute("UPDATE licenses SET slot_end = ? WHERE license_id = ?",
                                     (entitlements.slot_end(json.loads(policy), start or issued), license_id))
            filled += len(rows)
            if len(rows) < batch:
                return filled

    def _claim_request(self, request_key: str, now: int) -> None:
        if not self._claim_once(request_key, now):
            raise DrmError(ErrorCode.REPLAYED_CHALLENGE, "this challenge was already used")

    def _claim_once(self, request_key: str, now: int) -> bool:
        """Record a replay key; False if it was seen (keys older than the retention are forgotten, a purge
        at most once per second of the clock: the same second has nothing new to forget)."""
        if now != self._replay_purged_at and self.sql.try_serialize("purge:seen_requests"):
            self.sql.execute("DELETE FROM seen_requests WHERE seen_at < ?", (now - REPLAY_RETENTION,))
            self._replay_purged_at = now
        return bool(self.sql.execute("INSERT INTO seen_requests VALUES (?, ?) ON CONFLICT DO NOTHING",
                                     (request_key, now)).rowcount)

    def _audit(self, now: int, system: str, event: str, device_id: str | None, content_id: str | None,
               license_id: str | None, code: str | None, message: str | None) -> None:
        self.sql.execute(
            "INSERT INTO audit (at, system, event, device_id, content_id, license_id, code, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (now, system, event, device_id, content_id, license_id, code, message),
        )
        self._audit_writes += 1
        if self._audit_writes % self.retention.check_every == 0 and self.sql.try_serialize("purge:audit"):
            self._purge_refusals(now, self.retention.batch)

    def purge_audit(self, now: int) -> int:
        """Apply the audit retention fully now (in batches); the number of refusal rows deleted."""
        total = 0
        while True:
            with self.transaction():
                deleted = self._purge_refusals(now, self.retention.batch)
            total += deleted
            if deleted < self.retention.batch:
                return total

    def _purge_refusals(self, now: int, limit: int) -> int:
        """Delete up to ``limit`` refusal rows past the retention's age or row count, oldest first."""
        deleted = 0
        if self.retention.max_age > 0:
            deleted += self.sql.execute(
                f"DELETE FROM audit WHERE id IN (SELECT id FROM audit{self.sql.hint('audit_refusal_at')} "
                "WHERE event = 'refusal' AND at < ? LIMIT ?)", (now - self.retention.max_age, limit),
            ).rowcount
        if self.retention.max_rows > 0 and deleted < limit:
            row = self.sql.execute(
                f"SELECT id FROM audit{self.sql.hint('audit_refusal_id')} WHERE event = 'refusal' "
                "ORDER BY id DESC LIMIT 1 OFFSET ?", (self.retention.max_rows,),
            ).fetchone()
            if row is not None:
                deleted += self.sql.execute(
                    f"DELETE FROM audit WHERE id IN (SELECT id FROM audit{self.sql.hint('audit_refusal_id')} "
                    "WHERE event = 'refusal' AND id <= ? ORDER BY id LIMIT ?)", (row[0], limit - deleted),
                ).rowcount
        return deleted

    # ----------------------------------------------------------------- reads

    def license(self, license_id: str) -> LicenseRecord | None:
        rows = dicts(self.sql.execute("SELECT * FROM licenses WHERE license_id = ?", (license_id,)))
        return _license(rows[0]) if rows else None

    def licenses(self, *, limit: int | None = None, **filters: str | None) -> list[LicenseRecord]:
        """Licenses matching every given filter, oldest first, at most ``limit`` of them."""
        return list(self.iter_licenses(limit=limit, **filters))

    def iter_licenses(self, *, limit: int | None = None,
                      **filters: str | None) -> Generator[LicenseRecord, None, None]:
        """:meth:`licenses` lazily: rows are read as they are consumed (admin pages stop early)."""
        params = {k: v for k, v in filters.items() if k in _FILTERS and v is not None}
        # Only the most selective filter may use its index (the others are written "+column", which
        # SQLite never serves from an index): without statistics it could pick ``system`` over ``device_id``.
        best = next((name for name in _FILTERS if name in params), None)
        clauses = [f"{name if name == best else self.sql.unindexed(name)} = ?" for name in params]
        where = " AND ".join(clauses) or "1 = 1"
        page = "" if limit is None else f" LIMIT {int(limit)}"
        for row in dicts(self.sql.execute(f"SELECT * FROM licenses WHERE {where} ORDER BY issued_at{page}",
                                          list(params.values()))):
            yield _license(row)

    def license_summaries(self, filters: Mapping[str, str | None], *, before: int | None = None,
                          limit: int = 50) -> list[dict[str, Any]]:
        """Up to ``limit`` licenses (no policy, keys or secrets), newest first, keyset-paged on ``rowid < before``.

        ``filters`` are equality filters on :data:`LICENSE_FILTERS` (other names and empty values are ignored),
        so a page costs the same wherever it starts.
        """
        where, params = _license_where(filters)
        if before:
            where, params = f"{where} AND rowid < ?", [*params, before]
        rows = self.sql.execute(f"SELECT {', '.join(LICENSE_SUMMARY)} FROM licenses WHERE {where} "
                               "ORDER BY rowid DESC LIMIT ?", [*params, limit]).fetchall()
        out = [dict(zip(LICENSE_SUMMARY, row)) for row in rows]
        for row in out:
            row["tracks"] = json.loads(row["tracks"])
        return out

    def count_licenses(self, filters: Mapping[str, str | None], *, cap: int) -> int:
        """How many licenses match ``filters`` (as :meth:`license_summaries`), counting no further than ``cap``."""
        where, params = _license_where(filters)
        count: int = self.sql.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM licenses WHERE {where} LIMIT ?) AS page",
                                     [*params, cap]).fetchone()[0]
        return count

    def audit_since(self, after: int = 0, *, limit: int = 100) -> list[dict[str, Any]]:
        """The newest audit entries with an id above ``after``, newest first."""
        return dicts(self.sql.execute("SELECT * FROM audit WHERE id > ? ORDER BY id DESC LIMIT ?", (after, limit)))

    def devices(self, *, recent: int | None = None) -> list[dict[str, Any]]:
        """Every device, first seen first; or the ``recent`` most recently seen, latest first."""
        if recent is not None:
            return dicts(self.sql.execute("SELECT * FROM devices ORDER BY last_seen DESC LIMIT ?", (recent,)))
        return dicts(self.sql.execute("SELECT * FROM devices ORDER BY first_seen"))

    def device(self, device_id: str) -> dict[str, Any] | None:
        """One device row (as :meth:`devices` returns them), or ``None``."""
        rows = dicts(self.sql.execute("SELECT * FROM devices WHERE device_id = ?", (device_id,)))
        return rows[0] if rows else None

    def record_download(self, download: DownloadRecord, *, token: TokenSpend | None = None) -> None:
        """Record an authorized download with its single-use token check and audit entry, atomically."""
        d, now = download, download.authorized_at
        with self.transaction():
            if token is not None:
                self._spend_token(token, now)
            self.sql.execute(
                "INSERT INTO downloads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (d.download_id, d.device_id, d.content_id, d.license_id, d.account, d.tier, d.quality, d.scheme,
                 d.files, d.total_bytes, now, d.expires_at),
            )
            self._audit(now, "media", "download", d.device_id, d.content_id, d.license_id, None,
                        f"{d.quality} {d.scheme}: {d.files} files, {d.total_bytes} bytes")

    def downloads(self, *, device_id: str | None = None) -> list[dict[str, Any]]:
        if device_id:
            return dicts(self.sql.execute("SELECT * FROM downloads WHERE device_id = ? ORDER BY authorized_at",
                                          (device_id,)))
        return dicts(self.sql.execute("SELECT * FROM downloads ORDER BY authorized_at"))

    def audit_trail(self, *, license_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if license_id:
            return dicts(self.sql.execute("SELECT * FROM audit WHERE license_id = ? ORDER BY id DESC LIMIT ?",
                                          (license_id, limit)))
        return dicts(self.sql.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)))

    def counts(self) -> dict[str, int]:
        return {table: int(self.sql.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in ("devices", "licenses", "audit", "seen_requests")}


def _license_where(filters: Mapping[str, str | None]) -> tuple[str, list[Any]]:
    names = sorted(name for name, value in filters.items() if name in LICENSE_FILTERS and value)
    return " AND ".join(f"{name} = ?" for name in names) or "1 = 1", [filters[name] for name in names]


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
