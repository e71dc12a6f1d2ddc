"""Stream sessions in the store (migration 9): the writes the grant and renewal transactions make.

A mixin of :class:`~license_server.store_sql.SqlStore`, for every SQL backend: every method
here runs inside the caller's transaction (``_open_stream``, ``_stream_heartbeat``,
``_close_license_stream``) or opens its own (``close_stream``, ``end_stream``). The decisions
are the core's (:mod:`license_server.core.streams`); this module takes the account's snapshot
and applies them. Portable SQL only.

Concurrency: every read-decide-write on an account's sessions first takes
:meth:`~license_server.store_backend.SqlBackend.serialize` on ``streams:<account>`` (on
PostgreSQL a transaction-scoped advisory lock; on SQLite ``BEGIN IMMEDIATE`` already
serializes writers). A lock, not ``FOR UPDATE``: the account may have no session row yet
to lock. Renewals and releases lock the license row first and the account second, the
same order everywhere, so the two cannot deadlock.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from license_server.core import streams
from license_server.core.model import Grant
from license_server.core.streams import SessionState, StreamSession, StreamStart

if TYPE_CHECKING:
    from license_server.store_backend import SqlBackend

COLUMNS = ("session_id", "account", "system", "device_id", "content_id", "license_id", "continuation", "state",
           "opened_at", "renewed_at", "lease_until", "lease", "grace", "max_streams", "mode", "heartbeats",
           "ended_at", "end_reason")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM stream_sessions"


def _lock(account: str) -> str:
    return f"streams:{account}"


def _session(row: tuple[Any, ...]) -> StreamSession:
    return StreamSession(**dict(zip(COLUMNS, row, strict=True)))


class SqlStreamSessions:
    """Stream-session writes and reads over ``self.sql`` (mixed into the store)."""

    sql: SqlBackend

    def transaction(self) -> AbstractContextManager[None]:  # provided by SqlStore
        raise NotImplementedError

    def _audit(self, at: int, system: str, event: str, device_id: str | None, content_id: str | None,
               license_id: str | None, code: str | None, message: str | None) -> None:  # provided by SqlStore
        raise NotImplementedError

    # ------------------------------------------------------- inside a grant

    def _account_sessions(self, account: str, now: int) -> tuple[StreamSession, ...]:
        """Open sessions of the account, and ended ones whose lease would still run (STREAM_EVICTED)."""
        rows = self.sql.execute(f"{_SELECT} WHERE account = ? AND (state = 'open' OR lease_until + grace >= ?)",
                               (account, now)).fetchall()
        return tuple(_session(row) for row in rows)

    def _open_stream(self, grant: Grant, start: StreamStart, now: int) -> None:
        rules = start.rules
        self.sql.serialize(_lock(rules.account))
        decision = streams.decide_open(start, self._account_sessions(rules.account, now), now)
        if decision.continue_session is not None:
            self._extend(decision.continue_session, grant.license_id, rules.lease, now)
            self._audit(now, start.system, "stream_heartbeat", start.device_id, start.content_id, grant.license_id,
                        None, f"session {decision.continue_session} continued by a re-acquired license")
            return
        for session_id in decision.evict:
            self.sql.execute("UPDATE stream_sessions SET state = ?, ended_at = ?, end_reason = ? WHERE session_id = ?",
                            (SessionState.EVICTED.value, now, f"evicted by session {grant.license_id}", session_id))
            self._audit(now, start.system, "stream_evicted", None, start.content_id, None, None,
                        f"session {session_id} evicted by {grant.license_id} (evict_oldest)")
        self.sql.execute(
            "INSERT INTO stream_sessions (session_id, account, system, device_id, content_id, license_id, "
            "continuation, state, opened_at, renewed_at, lease_until, lease, grace, max_streams, mode, heartbeats) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, 0)",
            (grant.license_id, rules.account, start.system, start.device_id, start.content_id, grant.license_id,
             start.continuation, now, now, now + rules.lease, rules.lease, rules.grace, rules.max_streams,
             rules.mode.value),
        )
        self.sql.execute("INSERT INTO stream_licenses VALUES (?, ?)", (grant.license_id, grant.license_id))
        self._audit(now, start.system, "stream_open", start.device_id, start.content_id, grant.license_id, None,
                    f"stream session for {rules.account} (max {rules.max_streams}, {rules.mode.value})")

    def _extend(self, session_id: str, license_id: str, lease: int, now: int) -> None:
        self.sql.execute(
            "UPDATE stream_sessions SET state = 'open', license_id = ?, renewed_at = ?, lease_until = ?, "
            "heartbeats = heartbeats + 1, ended_at = NULL, end_reason = NULL WHERE session_id = ?",
            (license_id, now, now + lease, session_id))
        self.sql.execute("INSERT INTO stream_licenses VALUES (?, ?) ON CONFLICT (license_id) DO NOTHING",
                        (license_id, session_id))

    def _session_of(self, license_id: str) -> StreamSession | None:
        row = self.sql.execute(f"{_SELECT} WHERE session_id = (SELECT session_id FROM stream_licenses "
                              "WHERE license_id = ?)", (license_id,)).fetchone()
        return _session(row) if row is not None else None

    def _locked_session_of(self, license_id: str) -> StreamSession | None:
        """The license's session, read again once its account's sessions are locked."""
        session = self._session_of(license_id)
        if session is None:
            return None
        self.sql.serialize(_lock(session.account))
        return self._session_of(license_id)

    # -------------------------------------------------- inside a renewal

    def _stream_heartbeat(self, license_id: str, now: int) -> None:
        """A renewal of a streaming license: refuse an ended session, else extend its lease."""
        self.sql.execute(f"SELECT 1 FROM licenses WHERE license_id = ?{self.sql.for_update}", (license_id,))
        session = self._locked_session_of(license_id)
        if session is None:
            return
        streams.check_heartbeat(session, self._account_sessions(session.account, now), now)
        self._extend(session.session_id, license_id, session.lease, now)

    def _close_license_stream(self, license_id: str, now: int, reason: str) -> None:
        """Release or Secure Stop (the license row already locked): the license's open session ends at once."""
        session = self._locked_session_of(license_id)
        if session is not None and session.state == SessionState.OPEN.value:
            self._close(session, now, SessionState.CLOSED, reason)

    def _close(self, session: StreamSession, now: int, state: SessionState, reason: str) -> None:
        self.sql.execute("UPDATE stream_sessions SET state = ?, ended_at = ?, end_reason = ? WHERE session_id = ?",
                        (state.value, now, reason, session.session_id))
        self._audit(now, session.system, "stream_close", session.device_id, session.content_id, session.license_id,
                    None, f"session {session.session_id} {state.value}: {reason}")

    # ------------------------------------------------------ own transactions

    def close_stream(self, *, system: str, device_id: str, playback_id: str, now: int, reason: str) -> list[str]:
        """Close the open session of a device's playback (FairPlay lease end); the license ids it held."""
        query = f"{_SELECT} WHERE system = ? AND device_id = ? AND state = 'open'"
        with self.transaction():
            rows = self.sql.execute(query, (system, device_id)).fetchall()
            self.sql.serialize(*{_lock(s.account) for s in map(_session, rows)})
            rows = self.sql.execute(query, (system, device_id)).fetchall()  # as they are once locked
            closed = [s for s in map(_session, rows) if (s.continuation or "").endswith(":" + playback_id)]
            for session in closed:
                self._close(session, now, SessionState.CLOSED, reason)
            ids = [row[0] for s in closed for row in self.sql.execute(
                "SELECT license_id FROM stream_licenses WHERE session_id = ? ORDER BY license_id",
                (s.session_id,)).fetchall()]
        return ids

    def end_stream(self, session_id: str, *, now: int, reason: str) -> StreamSession | None:
        """An operator ends a session (idempotent); the session as it is now, or None if unknown."""
        with self.transaction():
            row = self.sql.execute(f"{_SELECT} WHERE session_id = ?", (session_id,)).fetchone()
            if row is None:
                return None
            self.sql.serialize(_lock(_session(row).account))
            session = _session(self.sql.execute(f"{_SELECT} WHERE session_id = ?", (session_id,)).fetchone())
            if session.state == SessionState.OPEN.value:
                self._close(session, now, SessionState.ENDED, reason)
            row = self.sql.execute(f"{_SELECT} WHERE session_id = ?", (session_id,)).fetchone()
        return _session(row)

    def streams(self, *, account: str | None = None, now: int, include_ended: bool = False) -> list[StreamSession]:
        """Sessions by account, then opening time: live ones, or every one with ``include_ended``."""
        where, args = ("WHERE account = ?", [account]) if account else ("", [])
        rows = self.sql.execute(f"{_SELECT} {where} ORDER BY account, opened_at, session_id", args).fetchall()
        sessions = [_session(row) for row in rows]
        return sessions if include_ended else [s for s in sessions if s.live(now)]
