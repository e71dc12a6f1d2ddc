"""Per-request policy overrides from the license URL: ``?cfg=(key:value,...)``.

The test-bench knob for every dialect. One group only (one license per
request); unknown keys and bad values are refused with
``INVALID_POLICY_OVERRIDE`` naming the key. Durations are whole seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

from license_server.core.model import SecurityLevel
from license_server.core.policy import PolicyOverrides
from license_server.errors import DrmError, ErrorCode
from license_server.protocols.cfg import CfgError, parse_bool, parse_groups, parse_seconds


def _level(key: str, value: str) -> SecurityLevel:
    try:
        return SecurityLevel(value.upper())
    except ValueError as exc:
        raise CfgError(f"cfg: key {key!r} needs L1 or L3, not {value!r}", key=key) from exc


def _required(key: str, value: str) -> bool:
    """Only ``required``: a license URL may add the attestation requirement, never lift one."""
    if value.lower() != "required":
        raise CfgError(f"cfg: key {key!r} takes only 'required', not {value!r}", key=key)
    return True


# key -> (PolicyOverrides field, value parser, description for the README and --help)
KEYS: dict[str, tuple[str, Callable[[str, str], object], str]] = {
    "persist": ("persist", parse_bool, "true: persistent (offline) license; false: temporary"),
    "rental": ("rental_duration", parse_seconds, "storage window in seconds, counted from download"),
    "playback": ("playback_duration", parse_seconds, "playback window in seconds, counted from first play"),
    "license": ("license_duration", parse_seconds, "license duration in seconds (0 = unlimited)"),
    "renew": ("can_renew", parse_bool, "the license may be renewed"),
    "renewdelay": ("renewal_delay", parse_seconds, "seconds after the license start before renewing"),
    "renewretry": ("renewal_retry_interval", parse_seconds, "seconds between renewal attempts"),
    "renewrecovery": ("renewal_recovery_duration", parse_seconds,
                      "seconds after expiry during which a renewal is still accepted"),
    "grace": ("play_start_grace_period", parse_seconds, "play-start grace period in seconds"),
    "softplayback": ("soft_enforce_playback", parse_bool,
                     "soft enforcement of the playback window (a started playback may finish)"),
    "softrental": ("soft_enforce_rental", parse_bool,
                   "soft enforcement of the storage window (a started playback may finish)"),
    "persistlevel": ("persistent_min_level", _level, "lowest security level allowed a persistent license"),
    "attestation": ("require_attestation", _required,
                    "required: refuse a challenge without attestation evidence (ATTESTATION_REQUIRED)"),
}


def overrides_from_query(query: Mapping[str, str]) -> PolicyOverrides:
    """Turn the ``cfg`` query parameter (if any) into :class:`PolicyOverrides`."""
    text = query.get("cfg")
    if text is None:
        return PolicyOverrides()
    try:
        groups = parse_groups(text)
        if len(groups) != 1:
            raise CfgError("cfg: one license per request here, so exactly one (...) group")
        values = {}
        for key, raw in groups[0].items():
            if key not in KEYS:
                raise CfgError(f"cfg: unknown key {key!r} (known: {', '.join(sorted(KEYS))})", key=key)
            field, parse, _ = KEYS[key]
            values[field] = parse(key, raw)
    except CfgError as exc:
        raise DrmError(ErrorCode.INVALID_POLICY_OVERRIDE, str(exc)) from exc
    return PolicyOverrides(**values)
