"""The policy engine: pure decisions about which keys a device gets, and how long.

``decide`` takes everything as arguments, ``now`` included, and returns a
:class:`Grant` or raises :class:`DrmError`. No I/O, no clock reads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from license_server.core.model import (
    Grant,
    Hdcp,
    LicenseChallenge,
    LicenseKind,
    LicensePolicy,
    PlatformVerification,
    Robustness,
    SecurityLevel,
    Track,
    TrackKey,
    VerifiedDevice,
)
from license_server.errors import DrmError, ErrorCode
from license_server.keyring import Title, TrackEntry

DAY = 86400
HOUR = 3600


@dataclass(frozen=True)
class TrackRequirement:
    robustness: Robustness
    hdcp: Hdcp


DEFAULT_TRACK_REQUIREMENTS: dict[Track, TrackRequirement] = {
    Track.AUDIO: TrackRequirement(Robustness.SW_SECURE_CRYPTO, Hdcp.NONE),
    Track.SD: TrackRequirement(Robustness.SW_SECURE_CRYPTO, Hdcp.NONE),
    Track.HD: TrackRequirement(Robustness.HW_SECURE_CRYPTO, Hdcp.V1),
    Track.UHD1: TrackRequirement(Robustness.HW_SECURE_ALL, Hdcp.V2_2),
}

PERSISTENT_DEFAULTS = LicensePolicy(can_persist=True, rental_duration=30 * DAY, playback_duration=48 * HOUR)
TEMPORARY_DEFAULTS = LicensePolicy(can_persist=False, license_duration=1 * DAY)


@dataclass(frozen=True)
class PolicyOverrides:
    """Per-request changes to the default policy (``cfg=`` now, tokens later).

    ``None`` leaves the default in place.
    """

    persist: bool | None = None
    rental_duration: int | None = None
    playback_duration: int | None = None
    license_duration: int | None = None
    can_renew: bool | None = None
    renewal_delay: int | None = None
    renewal_retry_interval: int | None = None
    renewal_recovery_duration: int | None = None
    play_start_grace_period: int | None = None
    soft_enforce_playback: bool | None = None
    soft_enforce_rental: bool | None = None
    persistent_min_level: SecurityLevel | None = None
    track_requirements: tuple[tuple[Track, TrackRequirement], ...] = ()
    lease_duration: int | None = None  # FairPlay-style lease; refused with persistence (LEASE_WITH_OFFLINE)
    allowed_tracks: frozenset[Track] | None = None  # e.g. audio-only clients: {AUDIO}; None = every track
    # a dialect's own baseline per track (e.g. FairPlay: HD at baseline robustness); below the title's and the
    # token's track rules, which are ``track_requirements``; None = the defaults above
    dialect_track_requirements: tuple[tuple[Track, TrackRequirement], ...] | None = None
    require_attestation: bool | None = None  # cfg attestation:required or a token claim: refuse unattested devices
    # PlayReady's test-server ``sl:150``/``sl:2000`` with ``persist:true``: the license itself names a software
    # security level as enough, so a client without our evidence (pyplayready) may persist; no other key opens this
    unattested_persistence: bool | None = None
    renewal_server_url: str | None = None  # where renewals go (Widevine Policy renewal_server_url)
    renew_with_usage: bool | None = None
    # an absolute end (PlayReady's enddate/removaldate): the rental and license windows end at this second,
    # whichever second the grant is issued in; it wins over both durations
    ends_at: int | None = None

    def apply(self, policy: LicensePolicy, now: int) -> LicensePolicy:
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("rental_duration", self.rental_duration),
                ("playback_duration", self.playback_duration),
                ("license_duration", self.license_duration),
                ("can_renew", self.can_renew),
                ("renewal_delay", self.renewal_delay),
                ("renewal_retry_interval", self.renewal_retry_interval),
                ("renewal_recovery_duration", self.renewal_recovery_duration),
                ("play_start_grace_period", self.play_start_grace_period),
                ("soft_enforce_playback", self.soft_enforce_playback),
                ("soft_enforce_rental", self.soft_enforce_rental),
                ("lease_duration", self.lease_duration),
                ("renewal_server_url", self.renewal_server_url),
                ("renew_with_usage", self.renew_with_usage),
            )
            if value is not None
        }
        if self.ends_at is not None:
            if self.ends_at <= now:
                raise DrmError(ErrorCode.INVALID_POLICY_OVERRIDE,
                               "the license's end date has passed (it would be born expired)")
            changes["rental_duration"] = changes["license_duration"] = self.ends_at - now
        return replace(policy, **changes) if changes else policy


def requested_kind(challenge: LicenseChallenge, overrides: PolicyOverrides) -> LicenseKind:
    """``persist`` in the override wins over the license type in the challenge."""
    if overrides.persist is None:
        return challenge.license_kind
    return LicenseKind.PERSISTENT if overrides.persist else LicenseKind.TEMPORARY


def decide(
    challenge: LicenseChallenge,
    device: VerifiedDevice | None,
    title: Title,
    *,
    overrides: PolicyOverrides,
    license_id: str,
    now: int,
) -> Grant:
    """Decide a NEW license request. ``device`` is None for dialects without identity."""
    kind = requested_kind(challenge, overrides)
    if device is not None and device.verification is PlatformVerification.UNVERIFIED:
        check_unattested(kind, overrides)
    if kind is LicenseKind.PERSISTENT and overrides.lease_duration:
        raise DrmError(ErrorCode.LEASE_WITH_OFFLINE, "a lease cannot be combined with a persistent (offline) license")
    if kind is LicenseKind.PERSISTENT:
        min_level = overrides.persistent_min_level or SecurityLevel.L1
        if device is not None and min_level is SecurityLevel.L1 and device.security_level is not SecurityLevel.L1:
            raise DrmError(
                ErrorCode.SECURITY_LEVEL_TOO_LOW,
                f"persistent licenses need L1; this device is {device.security_level.value}",
            )
    requested = _requested_tracks(challenge, title)
    requirements = {**DEFAULT_TRACK_REQUIREMENTS, **dict(overrides.dialect_track_requirements or ()),
                    **dict(overrides.track_requirements)}
    keys = []
    for entry in requested:
        if overrides.allowed_tracks is not None and entry.track not in overrides.allowed_tracks:
            continue
        need = requirements[entry.track]
        if device is not None and not (device.robustness >= need.robustness and device.max_hdcp.satisfies(need.hdcp)):
            continue
        keys.append(TrackKey(entry.kid, entry.key, entry.track, need.robustness, need.hdcp))
    if not keys:
        level = device.security_level.value if device else "?"
        raise DrmError(
            ErrorCode.SECURITY_LEVEL_TOO_LOW,
            f"no requested track is allowed for a {level} device with HDCP {device.max_hdcp.name if device else '?'}",
        )
    base = PERSISTENT_DEFAULTS if kind is LicenseKind.PERSISTENT else TEMPORARY_DEFAULTS
    return Grant(
        license_id=license_id,
        content_id=title.content_id,
        kind=kind,
        keys=tuple(keys),
        policy=overrides.apply(base, now),
        issued_at=now,
        device=device,
    )


def check_unattested(kind: LicenseKind, overrides: PolicyOverrides) -> None:
    """An unverified platform (no attestation evidence) gets software keys, and no persistent license by default.

    Its security level is already L3 (see :mod:`attestation`), so the track rules leave it what a
    software device may have. A persistent license is refused, unless a PlayReady-style test policy
    names a software security level as enough for it (``sl:150``/``sl:2000`` with ``persist:true``):
    in PlayReady the certificate's security level is the attestation, as real services treat SL2000.
    """
    if overrides.require_attestation:
        raise DrmError(ErrorCode.ATTESTATION_REQUIRED,
                       "the license URL or the entitlement token requires attestation evidence; the challenge has none")
    if kind is LicenseKind.PERSISTENT and not overrides.unattested_persistence:
        raise DrmError(ErrorCode.ATTESTATION_REQUIRED,
                       "a persistent license needs attestation evidence; a platform without it is served as "
                       "software-only, streaming licenses only")


def _requested_tracks(challenge: LicenseChallenge, title: Title) -> tuple[TrackEntry, ...]:
    if not challenge.key_ids:
        return title.tracks
    entries = []
    for kid in challenge.key_ids:
        entry = title.track_for(kid)
        if entry is None:
            raise DrmError(ErrorCode.KEY_NOT_FOUND, f"key id {kid.hex()} is not part of {title.content_id}")
        entries.append(entry)
    return tuple(entries)
