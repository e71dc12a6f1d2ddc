"""Concurrent-stream limits: pure decisions over an account's stream sessions.

A streaming license opens a *stream session* that holds one of the account's
``max_streams`` slots while its lease runs. A heartbeat (a Widevine-style
RENEWAL, a PlayReady short license re-acquired, a FairPlay lease renewal)
extends the lease; a release, Secure Stop or FairPlay lease end closes it at
once; a lease that lapsed (``lease_until + grace`` passed) frees the slot by
itself. Over the limit, ``block_new`` refuses the new stream
(``STREAM_LIMIT_REACHED``) and ``evict_oldest`` ends the oldest live session,
whose next heartbeat is then refused (``STREAM_EVICTED``).

The store takes a snapshot of the account's sessions inside the grant's (or the
renewal's) transaction and applies what these functions decide, so the limit
holds across workers. No I/O, no clock reads: ``now`` is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from license_server.core.model import LicensePolicy
from license_server.errors import DrmError, ErrorCode

DEFAULT_LEASE = 60  # seconds a heartbeat keeps a session alive
DEFAULT_GRACE = 30  # seconds past the lease before the slot is freed (a late heartbeat still counts)


class StreamMode(str, Enum):
    """What happens to the stream that would exceed the limit."""

    BLOCK_NEW = "block_new"
    EVICT_OLDEST = "evict_oldest"


class SessionState(str, Enum):
    OPEN = "open"
    CLOSED = "closed"  # release, Secure Stop, lease end
    EVICTED = "evicted"  # a newer stream took the slot (evict_oldest)
    ENDED = "ended"  # an operator ended it (admin API)


@dataclass(frozen=True)
class StreamRules:
    """The limit that applies to one account's streams."""

    account: str
    max_streams: int
    mode: StreamMode = StreamMode.BLOCK_NEW
    lease: int = DEFAULT_LEASE
    grace: int = DEFAULT_GRACE


@dataclass(frozen=True)
class StreamStart:
    """A streaming grant's request to open (or continue) a session, decided in the grant's transaction.

    ``continuation`` names a playback across re-acquisitions where the dialect's heartbeat is a
    new license (PlayReady: the device and title; FairPlay: the SPC's playback id); None for
    dialects whose heartbeat names the license (Widevine-style RENEWAL).
    """

    rules: StreamRules
    system: str
    device_id: str | None
    content_id: str
    continuation: str | None = None


@dataclass(frozen=True)
class StreamSession:
    """A stream session as the store keeps it."""

    session_id: str
    account: str
    system: str
    device_id: str | None
    content_id: str
    license_id: str  # the license that last opened or renewed it
    continuation: str | None
    state: str
    opened_at: int
    renewed_at: int
    lease_until: int
    lease: int
    grace: int
    max_streams: int
    mode: str
    heartbeats: int = 0
    ended_at: int | None = None
    end_reason: str | None = None

    def live(self, now: int) -> bool:
        """Open and within its lease plus grace: it holds a slot."""
        return self.state == SessionState.OPEN.value and now <= self.lease_until + self.grace

    def public(self, now: int) -> dict[str, object]:
        data: dict[str, object] = dict(self.__dict__)
        data["live"] = self.live(now)
        data["lease_remaining"] = max(0, self.lease_until - now)
        return data


@dataclass(frozen=True)
class OpenDecision:
    """Continue ``continue_session`` (a re-acquired heartbeat), or open a new one evicting ``evict``."""

    continue_session: str | None = None
    evict: tuple[str, ...] = ()


def decide_open(start: StreamStart, sessions: tuple[StreamSession, ...], now: int) -> OpenDecision:
    """Decide a streaming grant against the account's sessions (open, and recently ended ones).

    A grant continuing a live session of the same playback is its heartbeat; one continuing a
    session that was evicted or ended while its lease would still run is refused
    (``STREAM_EVICTED``): that is the evicted device's next heartbeat.
    """
    rules = start.rules
    if start.continuation is not None:
        for session in sessions:
            if session.continuation != start.continuation:
                continue
            if session.live(now):
                return OpenDecision(continue_session=session.session_id)
            if session.state in (SessionState.EVICTED.value, SessionState.ENDED.value) \
                    and now <= session.lease_until + session.grace:
                raise evicted(session)
    live = sorted((s for s in sessions if s.live(now)), key=lambda s: (s.opened_at, s.session_id))
    if len(live) < rules.max_streams:
        return OpenDecision()
    if rules.mode is StreamMode.BLOCK_NEW or rules.max_streams == 0:
        raise DrmError(ErrorCode.STREAM_LIMIT_REACHED,
                       f"{len(live)} of {rules.max_streams} streams of this account are playing; stop one, "
                       f"or wait until its lease ({rules.lease} s) and grace ({rules.grace} s) run out")
    return OpenDecision(evict=tuple(s.session_id for s in live[:len(live) - rules.max_streams + 1]))


def check_heartbeat(session: StreamSession, sessions: tuple[StreamSession, ...], now: int) -> None:
    """A heartbeat (renewal) of ``session``: refused if the session was ended, or lapsed and its slot taken.

    A lapsed session resumes (the stream that comes back after a network drop) while the
    account has a free slot; ``sessions`` is the account's snapshot.
    """
    if session.state in (SessionState.EVICTED.value, SessionState.ENDED.value):
        raise evicted(session)
    if session.state == SessionState.CLOSED.value:
        raise DrmError(ErrorCode.STREAM_EVICTED, f"stream session {session.session_id} was closed "
                       f"({session.end_reason or 'released'}); start a new stream")
    if session.live(now):
        return
    others = [s for s in sessions if s.session_id != session.session_id and s.live(now)]
    if len(others) >= session.max_streams:
        raise DrmError(ErrorCode.STREAM_LIMIT_REACHED,
                       f"the lease of stream session {session.session_id} ran out and its slot was taken "
                       f"({len(others)} of {session.max_streams} streams are playing)")


def evicted(session: StreamSession) -> DrmError:
    why = "an operator ended it" if session.state == SessionState.ENDED.value else "a newer stream took its slot"
    return DrmError(ErrorCode.STREAM_EVICTED, f"stream session {session.session_id} was ended: {why}")


def heartbeat_policy(policy: LicensePolicy, rules: StreamRules) -> LicensePolicy:
    """A streaming license under a limit is short and renewable: it lasts at most the lease plus grace.

    Renewal restarts its clock, so every heartbeat extends both the license and the session;
    ``renewal_delay`` defaults to half the lease. A FairPlay-style key gets the same window as its lease.
    """
    window = rules.lease + rules.grace
    duration = min(policy.license_duration, window) if policy.license_duration else window
    return replace(policy, can_renew=True, license_duration=duration,
                   renewal_delay=policy.renewal_delay or max(1, rules.lease // 2),
                   lease_duration=policy.lease_duration or window)
