"""The ``cfg=`` query grammar, modelled on the PlayReady test server.

    cfg      := group+
    group    := "(" pair ("," pair)* ")"
    pair     := key ":" value
    key      := [A-Za-z][A-Za-z0-9_]*
    value    := one or more characters other than "(", ")", ",", whitespace

One parenthesised group per license; no spaces anywhere. :func:`parse_groups`
parses the grammar; each dialect gives the keys their meaning and reports
unknown keys. Errors name the offending key or position.

:func:`parse_overrides` is the neutral grammar (Widevine-style and Clear Key):
one group only (one license per request); unknown keys and bad values are
refused with ``INVALID_POLICY_OVERRIDE`` naming the key. Durations are whole
seconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from license_server.core.model import SecurityLevel
from license_server.core.policy import PolicyOverrides
from license_server.errors import DrmError, ErrorCode

MAX_CFG_LENGTH = 4096
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_BAD_VALUE_CHARS = re.compile(r"[()\s,]")


class CfgError(ValueError):
    """The cfg string does not follow the grammar; ``key`` names the culprit if known."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def parse_groups(text: str) -> list[dict[str, str]]:
    """Parse ``(k:v,...)(k:v,...)`` into one ordered dict per group (keys lower-cased)."""
    if len(text) > MAX_CFG_LENGTH:
        raise CfgError(f"cfg is longer than {MAX_CFG_LENGTH} characters")
    if not text:
        raise CfgError("cfg is empty")
    groups: list[dict[str, str]] = []
    position = 0
    while position < len(text):
        if text[position] != "(":
            raise CfgError(f"cfg: expected '(' at position {position}, found {text[position]!r}")
        end = text.find(")", position)
        if end < 0:
            raise CfgError(f"cfg: group opened at position {position} is not closed")
        groups.append(_parse_group(text[position + 1:end]))
        position = end + 1
    return groups


def _parse_group(body: str) -> dict[str, str]:
    if not body:
        raise CfgError("cfg: empty group '()'")
    pairs: dict[str, str] = {}
    for item in body.split(","):
        key, sep, value = item.partition(":")
        if not sep:
            raise CfgError(f"cfg: {item!r} is not key:value", key=item or None)
        if not _KEY.match(key):
            raise CfgError(f"cfg: {key!r} is not a valid key", key=key)
        key = key.lower()
        if not value or _BAD_VALUE_CHARS.search(value):
            raise CfgError(f"cfg: key {key!r} has an empty or invalid value {value!r}", key=key)
        if key in pairs:
            raise CfgError(f"cfg: key {key!r} is given twice in one group", key=key)
        pairs[key] = value
    return pairs


def parse_bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise CfgError(f"cfg: key {key!r} needs true or false, not {value!r}", key=key)


def parse_seconds(key: str, value: str) -> int:
    """A non-negative whole number of seconds."""
    if not (value.isascii() and value.isdigit()):
        raise CfgError(f"cfg: key {key!r} needs a whole number of seconds, not {value!r}", key=key)
    seconds = int(value)
    if seconds > 10 * 365 * 86400:
        raise CfgError(f"cfg: key {key!r} is more than ten years", key=key)
    return seconds


def _level(key: str, value: str) -> SecurityLevel:
    try:
        return SecurityLevel(value.upper())
    except ValueError as exc:
        raise CfgError(f"cfg: key {key!r} needs L1 or L3, not {value!r}", key=key) from exc


def _url(key: str, value: str) -> str:
    """An absolute http(s) URL (no spaces, parentheses or commas: the grammar forbids them)."""
    if not value.startswith(("http://", "https://")) or len(value) > 2048:
        raise CfgError(f"cfg: key {key!r} needs an http:// or https:// URL, not {value!r}", key=key)
    return value


def _required(key: str, value: str) -> bool:
    """Only ``required``: a license URL may add the attestation requirement, never lift one."""
    if value.lower() != "required":
        raise CfgError(f"cfg: key {key!r} takes only 'required', not {value!r}", key=key)
    return True


# key -> (PolicyOverrides field, value parser, description for the README and --help)
OVERRIDE_KEYS: dict[str, tuple[str, Callable[[str, str], object], str]] = {
    "persist": ("persist", parse_bool, "true: persistent (offline) license; false: temporary"),
    "rental": ("rental_duration", parse_seconds, "storage window in seconds, counted from download"),
    "playback": ("playback_duration", parse_seconds, "playback window in seconds, counted from first play"),
    "license": ("license_duration", parse_seconds, "license duration in seconds (0 = unlimited)"),
    "renew": ("can_renew", parse_bool, "the license may be renewed"),
    "renewdelay": ("renewal_delay", parse_seconds, "seconds after the license start before renewing"),
    "renewretry": ("renewal_retry_interval", parse_seconds, "seconds between renewal attempts"),
    "renewrecovery": ("renewal_recovery_duration", parse_seconds,
                      "seconds after expiry during which a renewal is still accepted"),
    "renewurl": ("renewal_server_url", _url,
                 "renewal server URL (http/https) the license names for renewals"),
    "renewusage": ("renew_with_usage", parse_bool, "renewals carry usage (Widevine renew_with_usage)"),
    "grace": ("play_start_grace_period", parse_seconds, "play-start grace period in seconds"),
    "softplayback": ("soft_enforce_playback", parse_bool,
                     "soft enforcement of the playback window (a started playback may finish)"),
    "softrental": ("soft_enforce_rental", parse_bool,
                   "soft enforcement of the storage window (a started playback may finish)"),
    "persistlevel": ("persistent_min_level", _level, "lowest security level allowed a persistent license"),
    "attestation": ("require_attestation", _required,
                    "required: refuse a challenge without attestation evidence (ATTESTATION_REQUIRED)"),
}


def parse_overrides(query: Mapping[str, str]) -> PolicyOverrides:
    """Turn the ``cfg`` query parameter (if any) into :class:`PolicyOverrides`."""
    text = query.get("cfg")
    if text is None:
        return PolicyOverrides()
    try:
        groups = parse_groups(text)
        if len(groups) != 1:
            raise CfgError("cfg: one license per request here, so exactly one (...) group")
        values: dict[str, object] = {}
        for key, raw in groups[0].items():
            if key not in OVERRIDE_KEYS:
                raise CfgError(f"cfg: unknown key {key!r} (known: {', '.join(sorted(OVERRIDE_KEYS))})", key=key)
            field, parse, _ = OVERRIDE_KEYS[key]
            values[field] = parse(key, raw)
    except CfgError as exc:
        raise DrmError(ErrorCode.INVALID_POLICY_OVERRIDE, str(exc)) from exc
    return PolicyOverrides(**values)  # type: ignore[arg-type]
