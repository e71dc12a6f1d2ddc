"""FairPlay business rules as neutral policy overrides, and the dialect's ``cfg=`` keys (pure).

FairPlay's suggested rules, in neutral terms (``core/policy.py`` applies them):

* UHD needs security level main (an L1 device) and HDCP Type 1 (HDCP 2.2+);
* HD needs baseline (L3 is enough) and HDCP (Type 0 or better);
* SD and audio need baseline; audio-only clients (the "audio" device class) get
  audio keys only;
* a lease cannot be combined with a persistent (offline) license.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from license_server.core.model import Hdcp, LicenseKind, Robustness, Track
from license_server.core.policy import PolicyOverrides, TrackRequirement
from license_server.errors import DrmError, ErrorCode
from license_server.protocols.cfg import CfgError, parse_bool, parse_groups, parse_seconds

TRACK_REQUIREMENTS: dict[Track, TrackRequirement] = {
    Track.AUDIO: TrackRequirement(Robustness.SW_SECURE_CRYPTO, Hdcp.NONE),
    Track.SD: TrackRequirement(Robustness.SW_SECURE_CRYPTO, Hdcp.NONE),
    Track.HD: TrackRequirement(Robustness.SW_SECURE_CRYPTO, Hdcp.V1),
    Track.UHD1: TrackRequirement(Robustness.HW_SECURE_ALL, Hdcp.V2_2),
}
VIDEO = (Track.SD, Track.HD, Track.UHD1)
HDCP_VALUES = {"none": Hdcp.NONE, "type0": Hdcp.V1, "type1": Hdcp.V2_2}

CFG_KEYS = {
    "persist": "true: persistent (offline) key; false: streaming",
    "lease": "lease in seconds (streaming only; with persistence it is refused: LEASE_WITH_OFFLINE)",
    "rental": "seconds: the storage window of an offline key, the rental of a streaming key",
    "playback": "seconds: the playback window of an offline key, counted from first play",
    "hdcp": "none | type0 | type1: raise the HDCP every video track needs (never lowers the rules)",
}


def _parse_cfg(text: str) -> dict[str, str]:
    groups = parse_groups(text)
    if len(groups) != 1:
        raise CfgError("cfg: one key per request here, so exactly one (...) group")
    unknown = [key for key in groups[0] if key not in CFG_KEYS]
    if unknown:
        raise CfgError(f"cfg: unknown key {unknown[0]!r} (known: {', '.join(sorted(CFG_KEYS))})", key=unknown[0])
    return groups[0]


def overrides_for(query: Mapping[str, str], *, license_kind: LicenseKind, audio_only: bool) -> PolicyOverrides:
    """The FairPlay track rules plus the request's ``cfg=`` values as :class:`PolicyOverrides`.

    The FairPlay rules are the dialect's baseline (``dialect_track_requirements``), so a title's or a
    token's track rule still applies on top of them; a ``cfg=`` HDCP raise is a request override.
    """
    requirements = dict(TRACK_REQUIREMENTS)
    raised: dict[Track, TrackRequirement] = {}
    values: dict[str, Any] = {}  # PolicyOverrides fields by name
    text = query.get("cfg")
    try:
        cfg = _parse_cfg(text) if text is not None else {}
        persist = parse_bool("persist", cfg["persist"]) if "persist" in cfg else None
        kind = license_kind if persist is None else (LicenseKind.PERSISTENT if persist else LicenseKind.TEMPORARY)
        if persist is not None:
            values["persist"] = persist
        if "lease" in cfg:
            values["lease_duration"] = parse_seconds("lease", cfg["lease"])
        if "rental" in cfg:
            field = "rental_duration" if kind is LicenseKind.PERSISTENT else "license_duration"
            values[field] = parse_seconds("rental", cfg["rental"])
        if "playback" in cfg:
            values["playback_duration"] = parse_seconds("playback", cfg["playback"])
        if "hdcp" in cfg:
            wanted = HDCP_VALUES.get(cfg["hdcp"].lower())
            if wanted is None:
                raise CfgError(f"cfg: key 'hdcp' needs none, type0 or type1, not {cfg['hdcp']!r}", key="hdcp")
            for track in VIDEO:
                need = requirements[track]
                raised[track] = TrackRequirement(need.robustness, max(need.hdcp, wanted))
    except CfgError as exc:
        raise DrmError(ErrorCode.INVALID_POLICY_OVERRIDE, str(exc)) from exc
    return PolicyOverrides(
        **values,
        dialect_track_requirements=tuple(requirements.items()),
        track_requirements=tuple(raised.items()),
        allowed_tracks=frozenset({Track.AUDIO}) if audio_only else None,
    )
