"""The PlayReady test server's query syntax: ``?cfg=(key:value,...)``.

The grammar is :mod:`license_server.protocols.cfg`; this module gives the
keys their meaning (pure; ``now`` is an argument). One group per license; this
server issues one license per request, so a second group is refused. Unknown
keys are refused with a fault naming all of them. Dates are
``yyyymmdd[hhmmss]``, GMT. The table of keys is in docs/playready.md.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from license_server.core.model import Hdcp, SecurityLevel, Track
from license_server.core.policy import DEFAULT_TRACK_REQUIREMENTS, PolicyOverrides, TrackRequirement
from license_server.errors import DrmError, ErrorCode
from license_server.protocols.cfg import CfgError, parse_bool, parse_groups, parse_seconds
from license_server.protocols.playready import SECURITY_LEVELS, SL3000
from license_server.protocols.playready.xmr import OutputProtection

ALIASES = {"firstplayexpiration": "firstexp", "expiration": "enddate"}
KEYS = ("persist", "firstexp", "begindate", "enddate", "realtime", "removaldate", "sl", "kid", "contentkey", "ckt",
        "playright", "cvopl", "ucvopl", "avopl", "caopl", "ucaopl", "errorcode", "revoked", "msg")
OPL_VALUES = {
    "cvopl": (100, 150, 200, 250, 270, 300, 400, 500),
    "ucvopl": (100, 150, 200, 250, 270, 300),
    "avopl": (100, 150, 200),
    "caopl": (100, 150, 200, 250, 300),
    "ucaopl": (100, 150, 200, 250, 300),
}
OPL_FIELDS = {"cvopl": "compressed_digital_video", "ucvopl": "uncompressed_digital_video",
              "avopl": "analog_video", "caopl": "compressed_digital_audio", "ucaopl": "uncompressed_digital_audio"}
HDCP_REQUIRED_UCVOPL = 300  # uncompressed digital video passes only with HDCP engaged
_DATE = re.compile(r"\d{8}(\d{6})?\Z")
VIDEO_TRACKS = (Track.SD, Track.HD, Track.UHD1)


@dataclass(frozen=True)
class TestServerCfg:
    persist: bool | None = None
    first_play_expiration: int | None = None
    begin_date: int | None = None
    end_date: int | None = None
    real_time: bool = False
    removal_date: int | None = None
    min_security_level: int | None = None
    kid: bytes | None = None
    content_key: bytes | None = None
    cipher: str | None = None  # AESCTR | AESCBC
    play_right: bool = True
    output_protection: OutputProtection | None = None
    error_code: int | None = None
    revoked: bool = False
    client_info: bool = False

    @property
    def deadline(self) -> int | None:
        """When the license stops being usable: the earlier of end date and removal date."""
        dates = [d for d in (self.end_date, self.removal_date) if d]
        return min(dates) if dates else None

    def overrides(self) -> PolicyOverrides:
        """The neutral policy changes these keys ask for."""
        changes: dict[str, Any] = {"persist": self.persist, "playback_duration": self.first_play_expiration,
                                   "ends_at": self.deadline}
        if self.min_security_level is not None:
            changes["persistent_min_level"] = (SecurityLevel.L1 if self.min_security_level >= SL3000
                                               else SecurityLevel.L3)
            changes["unattested_persistence"] = self.min_security_level < SL3000 or None
        opl = self.output_protection
        if opl is not None and opl.uncompressed_digital_video >= HDCP_REQUIRED_UCVOPL:
            changes["track_requirements"] = tuple(
                (track, TrackRequirement(DEFAULT_TRACK_REQUIREMENTS[track].robustness,
                                         max(DEFAULT_TRACK_REQUIREMENTS[track].hdcp, Hdcp.V1)))
                for track in VIDEO_TRACKS
            )
        return PolicyOverrides(**{k: v for k, v in changes.items() if v is not None})


def _fault(message: str) -> DrmError:
    return DrmError(ErrorCode.INVALID_POLICY_OVERRIDE, message)


def parse_date(key: str, value: str) -> int:
    if not _DATE.match(value):
        raise CfgError(f"cfg: key {key!r} needs a date yyyymmdd[hhmmss] (GMT), not {value!r}", key=key)
    fmt = "%Y%m%d%H%M%S" if len(value) == 14 else "%Y%m%d"
    try:
        return int(datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp())
    except ValueError as exc:
        raise CfgError(f"cfg: key {key!r}: {value!r} is not a valid date", key=key) from exc


def parse_kid(key: str, value: str) -> bytes:
    """A GUID (``12345678-...``), 32 hex digits, or base64 of the little-endian GUID (WRMHEADER form)."""
    try:
        if len(value) == 36:
            return uuid.UUID(value).bytes
        if len(value) == 32:
            return bytes.fromhex(value)
        raw = base64.b64decode(value, validate=True)
        if len(raw) == 16:
            return uuid.UUID(bytes_le=raw).bytes
    except (ValueError, binascii.Error):
        pass
    raise CfgError(f"cfg: key {key!r} needs a GUID, 32 hex digits or base64 of the LE GUID, not {value!r}", key=key)


def parse_key_bytes(key: str, value: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if len(value) == 32 else base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 16:
        raise CfgError(f"cfg: key {key!r} needs a 16-byte key (base64 or 32 hex digits)", key=key)
    return raw


def parse_status(key: str, value: str) -> int:
    text = value[2:] if value.lower().startswith("0x") else value
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", text) or int(text, 16) < 0x80000000:
        raise CfgError(f"cfg: key {key!r} needs a failure HRESULT like 0x8004C065, not {value!r}", key=key)
    return int(text, 16)


def parse_cfg(text: str | None, *, now: int) -> TestServerCfg:
    """Parse and check a ``cfg=`` value; faults carry INVALID_POLICY_OVERRIDE."""
    if text is None:
        return TestServerCfg()
    try:
        groups = parse_groups(text)
        if len(groups) > 1:
            raise CfgError(f"cfg: {len(groups)} groups given; this server issues one license per request")
        return _interpret(groups[0], now)
    except CfgError as exc:
        raise _fault(str(exc)) from exc


def _interpret(group: dict[str, str], now: int) -> TestServerCfg:
    pairs: dict[str, tuple[str, str]] = {}
    for given, value in group.items():
        name = ALIASES.get(given, given)
        if name in pairs:
            raise CfgError(f"cfg: {given!r} repeats {pairs[name][0]!r}", key=given)
        pairs[name] = (given, value)
    unknown = [given for name, (given, _) in pairs.items() if name not in KEYS]
    if unknown:
        raise CfgError(f"cfg: unknown key(s) {', '.join(map(repr, unknown))}; known keys: "
                       f"{', '.join(KEYS + tuple(ALIASES))}", key=unknown[0])
    cfg, opl = TestServerCfg(), {}
    for name, (given, value) in pairs.items():
        if name in ("persist", "realtime", "revoked"):
            field = {"persist": "persist", "realtime": "real_time", "revoked": "revoked"}[name]
            cfg = _with(cfg, field, parse_bool(given, value))
        elif name == "playright":
            cfg = replace(cfg, play_right=parse_bool(given, value))
        elif name == "firstexp":
            cfg = replace(cfg, first_play_expiration=parse_seconds(given, value))
        elif name in ("begindate", "enddate", "removaldate"):
            cfg = _with(cfg, f"{name[:-4]}_date" if name != "removaldate" else "removal_date",
                        parse_date(given, value))
        elif name == "sl":
            if not (value.isascii() and value.isdigit()) or int(value) not in SECURITY_LEVELS:
                raise CfgError(f"cfg: key 'sl' must be one of {', '.join(map(str, SECURITY_LEVELS))}", key=given)
            cfg = replace(cfg, min_security_level=int(value))
        elif name == "kid":
            cfg = replace(cfg, kid=parse_kid(given, value))
        elif name == "contentkey":
            cfg = replace(cfg, content_key=parse_key_bytes(given, value))
        elif name == "ckt":
            if value.upper() not in ("AESCTR", "AESCBC"):
                raise CfgError("cfg: key 'ckt' must be aesctr or aescbc", key=given)
            cfg = replace(cfg, cipher=value.upper())
        elif name in OPL_VALUES:
            if not (value.isascii() and value.isdigit()) or int(value) not in OPL_VALUES[name]:
                raise CfgError(f"cfg: key {name!r} must be one of {', '.join(map(str, OPL_VALUES[name]))}", key=given)
            opl[OPL_FIELDS[name]] = int(value)
        elif name == "errorcode":
            cfg = replace(cfg, error_code=parse_status(given, value))
        elif name == "msg":
            if value.lower() != "clientinfo":
                raise CfgError("cfg: key 'msg' supports only msg:clientinfo", key=given)
            cfg = replace(cfg, client_info=True)
    if opl:
        cfg = replace(cfg, output_protection=OutputProtection(**opl))
    return _check(cfg, now)


def _with(cfg: TestServerCfg, field: str, value: object) -> TestServerCfg:
    """``cfg`` with the field named at run time set to ``value``."""
    changes: dict[str, Any] = {field: value}
    return replace(cfg, **changes)


def _check(cfg: TestServerCfg, now: int) -> TestServerCfg:
    if cfg.content_key is not None and cfg.kid is None:
        raise CfgError("cfg: 'contentkey' needs 'kid' (the key id it belongs to)", key="contentkey")
    if cfg.deadline is not None and cfg.deadline <= now:
        raise CfgError("cfg: the end/removal date is not in the future (the license would be born expired)",
                       key="enddate" if cfg.end_date else "removaldate")
    if cfg.begin_date is not None and cfg.deadline is not None and cfg.begin_date >= cfg.deadline:
        raise CfgError("cfg: 'begindate' is not before the end/removal date", key="begindate")
    return cfg
