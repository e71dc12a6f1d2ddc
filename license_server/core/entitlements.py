"""Entitlements: who the viewer is, what they may play, and the business rules.

Pure functions over values (no I/O, no clock reads). An :class:`Entitlement`
comes from a verified token or, in development mode, is the documented
default. :func:`authorize` applies the per-request rules (content, device
binding, region, offline rights); :func:`terms` merges the title's rights, the
token's policy and the request's ``cfg=`` overrides into one
:class:`PolicyOverrides`; :func:`check_usage` applies the caps to a snapshot
the store takes inside the grant's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime

from license_server.core import lifecycle
from license_server.core.model import Hdcp, LicenseKind, Robustness, SecurityLevel, Track
from license_server.core.policy import DEFAULT_TRACK_REQUIREMENTS, PolicyOverrides, TrackRequirement
from license_server.core.ports import UsageRules, UsageSnapshot
from license_server.core.streams import StreamMode, StreamRules
from license_server.errors import DrmError, ErrorCode
from license_server.rights import Rights, TitleRights
from license_server.tokens import TokenClaims, TrackRule

DEVELOPMENT = "development"
TOKEN = "token"


@dataclass(frozen=True)
class Entitlement:
    """What the operator's backend vouches for (or the development default)."""

    source: str  # "token" | "development"
    account: str | None = None
    profile: str | None = None
    tier: str | None = None
    content_ids: frozenset[str] | None = None  # None: any title (development mode)
    device_id: str | None = None
    offline_allowed: bool = True
    overrides: PolicyOverrides = field(default_factory=PolicyOverrides)
    regions: tuple[str, ...] | None = None
    region: str | None = None
    device_cap: int | None = None
    jti: str | None = None
    expires_at: int | None = None
    max_streams: int | None = None
    stream_mode: str | None = None

    @property
    def is_development(self) -> bool:
        return self.source == DEVELOPMENT


DEVELOPMENT_DEFAULT = Entitlement(source=DEVELOPMENT)


@dataclass(frozen=True)
class Access:
    """What a request brings besides its challenge: the token and the viewer's region header."""

    token: str | None = None
    region: str | None = None


def requirement_for(track: Track, rule: TrackRule) -> TrackRequirement:
    """A rights/token track rule as a policy requirement (unset parts keep the default)."""
    default = DEFAULT_TRACK_REQUIREMENTS[track]
    robustness = default.robustness
    if rule.min_level == SecurityLevel.L3.value:
        robustness = Robustness.SW_SECURE_CRYPTO
    elif rule.min_level == SecurityLevel.L1.value:
        robustness = max(default.robustness, Robustness.HW_SECURE_CRYPTO)
    hdcp = Hdcp[rule.hdcp] if rule.hdcp is not None else default.hdcp
    return TrackRequirement(robustness, hdcp)


def track_requirements(rules: dict[str, TrackRule]) -> tuple[tuple[Track, TrackRequirement], ...]:
    """Rights or token track rules, by track name, as policy requirements."""
    return tuple((Track(name), requirement_for(Track(name), rule)) for name, rule in rules.items())


def from_claims(claims: TokenClaims) -> Entitlement:
    policy = claims.policy
    overrides = PolicyOverrides(
        rental_duration=policy.rental, playback_duration=policy.playback, license_duration=policy.license,
        can_renew=policy.renew, renewal_delay=policy.renewal_delay,
        renewal_retry_interval=policy.renewal_retry, renewal_recovery_duration=policy.renewal_recovery,
        renewal_server_url=policy.renewal_server_url, renew_with_usage=policy.renew_with_usage,
        track_requirements=track_requirements(claims.tracks),
        require_attestation=policy.require_attestation or None,  # false lifts nothing
    )
    return Entitlement(
        source=TOKEN, account=claims.sub, profile=claims.profile, tier=claims.tier.lower(),
        content_ids=frozenset(claims.content), device_id=claims.device_id, offline_allowed=policy.persistent,
        overrides=overrides, regions=tuple(r.upper() for r in claims.regions) if claims.regions is not None else None,
        region=claims.region.upper() if claims.region else None, device_cap=claims.device_cap, jti=claims.jti,
        expires_at=claims.exp, max_streams=claims.max_streams, stream_mode=claims.stream_mode,
    )


_MERGED_FIELDS = tuple(f.name for f in fields(PolicyOverrides) if f.name != "track_requirements")


def merge(base: PolicyOverrides, top: PolicyOverrides) -> PolicyOverrides:
    """``top``'s set values win; track requirements are combined per track.

    An empty ``top`` (no token policy, no ``cfg=``: the common request) returns ``base`` itself.
    """
    changes = {name: value for name in _MERGED_FIELDS if (value := getattr(top, name)) is not None}
    if not changes and not top.track_requirements:
        return base
    tracks = dict(base.track_requirements) | dict(top.track_requirements)
    return replace(base, **changes, track_requirements=tuple(tracks.items()))


def title_overrides(rights: TitleRights) -> PolicyOverrides:
    return PolicyOverrides(
        rental_duration=rights.rental, playback_duration=rights.playback,
        renewal_delay=rights.renewal_delay, renewal_retry_interval=rights.renewal_retry,
        renewal_recovery_duration=rights.renewal_recovery, renewal_server_url=rights.renewal_server_url,
        renew_with_usage=rights.renew_with_usage, track_requirements=track_requirements(rights.tracks),
    )


def terms(rights: TitleRights, entitlement: Entitlement, request: PolicyOverrides) -> PolicyOverrides:
    """Title rights, then the token's policy, then the request's ``cfg=`` test overrides."""
    return merge(merge(title_overrides(rights), entitlement.overrides), request)


def authorize(entitlement: Entitlement, *, content_id: str, rights: TitleRights, kind: LicenseKind,
              device_id: str | None, region_header: str | None) -> None:
    """Per-request rules; raises :class:`DrmError` with the rule's stable code.

    ``device_id`` is None for dialects without device identity (Clear Key).
    """
    if entitlement.content_ids is not None and content_id not in entitlement.content_ids:
        raise DrmError(ErrorCode.CONTENT_NOT_ENTITLED, f"the token does not cover {content_id}")
    if entitlement.device_id is not None:
        if device_id is None:
            raise DrmError(ErrorCode.TOKEN_DEVICE_MISMATCH,
                           "the token is bound to a device and this dialect carries no device identity")
        if device_id != entitlement.device_id:
            raise DrmError(ErrorCode.TOKEN_DEVICE_MISMATCH, "the token is bound to another device")
    check_region(entitlement, rights, region_header)
    if kind is LicenseKind.PERSISTENT:
        if not rights.downloadable:
            raise DrmError(ErrorCode.OFFLINE_NOT_ALLOWED, f"the owner of {content_id} does not allow downloads")
        if not entitlement.offline_allowed:
            raise DrmError(ErrorCode.OFFLINE_NOT_ALLOWED, "the entitlement token does not allow persistent licenses")


def check_region(entitlement: Entitlement, rights: TitleRights, region_header: str | None) -> None:
    """The viewer's region (the token's, else the request header's) must be allowed by both."""
    allowed = [set(r) for r in (rights.regions, entitlement.regions) if r is not None]
    if not allowed:
        return
    region = entitlement.region or (region_header or "").strip().upper() or None
    if region is None:
        raise DrmError(ErrorCode.REGION_NOT_ALLOWED,
                       "the title is region-restricted and the viewer's region is unknown")
    if not all(region in codes for codes in allowed):
        raise DrmError(ErrorCode.REGION_NOT_ALLOWED, f"not available in region {region}")


# ------------------------------------------------------------------ caps


def stream_rules(rights: Rights, entitlement: Entitlement) -> StreamRules | None:
    """The account's concurrent-stream limit (the token's claim, else its tier's); None: no limit, or no account."""
    if entitlement.account is None:
        return None
    tier = rights.tier(entitlement.tier)
    limit = entitlement.max_streams if entitlement.max_streams is not None else tier.max_streams
    if limit is None:
        return None
    return StreamRules(account=entitlement.account, max_streams=limit,
                       mode=StreamMode(entitlement.stream_mode or tier.stream_mode), lease=tier.stream_lease,
                       grace=tier.stream_grace)


def usage_rules(rights: Rights, entitlement: Entitlement, device_id: str) -> UsageRules:
    tier = rights.tier(entitlement.tier)
    cap = entitlement.device_cap if entitlement.device_cap is not None else tier.device_cap
    return UsageRules(
        account=entitlement.account, device_id=device_id,
        device_cap=cap if entitlement.account is not None else None,
        max_active_per_device=rights.max_active_downloads_per_device,
        monthly_allowance=tier.monthly_allowance if entitlement.account is not None else None,
    )


def month_start(now: int) -> int:
    """Start of the calendar month (UTC) that contains ``now``."""
    day = datetime.fromtimestamp(now, tz=UTC)
    return int(day.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp())


NEVER = 2**62
"""The slot end of a license without a deadline (an integer, so that one indexed comparison decides)."""
ACTIVE_STATES = (lifecycle.State.ISSUED.value, lifecycle.State.IN_USE.value, lifecycle.State.RENEWED.value)
"""States that hold a download slot until :func:`slot_end`."""


def slot_end(policy: lifecycle.PolicyLike, license_start: int) -> int:
    """When a persistent license stops holding a download slot, unless released first: its deadline plus
    the renewal recovery window (the moment :func:`lifecycle.is_expired` turns true), or :data:`NEVER`.

    Stored with the license (and updated by every lifecycle event that moves its start or policy), so that
    the caps count active holdings in SQL instead of reading each one back.
    """
    terms = lifecycle.typed(policy)
    end = terms.deadline(license_start)
    return NEVER if end is None else end + terms.renewal_recovery_duration


def check_usage(rules: UsageRules, snapshot: UsageSnapshot) -> None:
    """Device cap per account, active downloads per device, monthly allowance."""
    if rules.device_cap is not None and rules.account is not None:
        devices = snapshot.account_devices
        if rules.device_id not in devices and len(devices) >= rules.device_cap:
            raise DrmError(ErrorCode.DEVICE_LIMIT_REACHED,
                           f"{len(devices)} of {rules.device_cap} devices of this account hold downloads; "
                           "release one first")
    if rules.max_active_per_device is not None:
        on_device = snapshot.device_active
        if on_device >= rules.max_active_per_device:
            raise DrmError(ErrorCode.DOWNLOAD_LIMIT_REACHED,
                           f"this device holds {on_device} active downloads (limit {rules.max_active_per_device})")
    if rules.monthly_allowance is not None and snapshot.device_grants_this_month >= rules.monthly_allowance:
        raise DrmError(ErrorCode.MONTHLY_ALLOWANCE_EXHAUSTED,
                       f"{snapshot.device_grants_this_month} of {rules.monthly_allowance} downloads this month "
                       "on this device; the allowance resets on the 1st (UTC)")
