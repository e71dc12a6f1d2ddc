"""Values carried inside TLLV blocks: public layouts first, our extensions after (sans-I/O).

Public facts (FairPlay Streaming documentation and server SDK): the value
constants of security levels, HDCP types, key-duration types, playback states,
capability and sync flags, and the layouts of the capabilities, media playback
state, key duration, offline key, HDCP information, security level and offline
sync values. Everything named ``Emu*`` / tagged ``EMU_*`` is ours.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

from license_server import jsonsafe
from license_server.core.model import Evidence, LicenseKind, PlatformVerification, Track
from license_server.errors import malformed

NO_LEASE = 0xFFFFFFFF
KEY_DURATION_RESERVED = 0x86D34A3A
OFFLINE_KEY_VERSION = 1
SECURITY_LEVEL_VERSION = 1
SYNC_VERSION = 1


class SecurityLevel(IntEnum):
    """FairPlay security levels (public values; numerically ordered audio < baseline < main)."""

    AUDIO = 0x17D99D574EED567D
    BASELINE = 0x32F0004966A5C4F8
    MAIN = 0x4E7FD92421D588B4


class HdcpType(IntEnum):
    """HDCP requirement (public values; not ordered, see :func:`hdcp_rank`)."""

    NONE = 0xEF72894CA7895B78
    TYPE0 = 0x40791AC78BD5C571
    TYPE1 = 0x285A0863BBA8E1D3


_HDCP_RANK = {HdcpType.NONE: 0, HdcpType.TYPE0: 1, HdcpType.TYPE1: 2}


def hdcp_rank(value: HdcpType) -> int:
    return _HDCP_RANK[value]


class KeyDurationType(IntEnum):
    NONE = 0
    LEASE = 0x1A4BDE7E
    RENTAL = 0x3DFE45A0
    LEASE_AND_RENTAL = 0x27B59BDE
    PERSISTENCE = 0x3DF2D9FB
    PERSISTENCE_AND_RENTAL = 0x18F06048


class PlaybackState(IntEnum):
    FIRST_PLAYBACK_CK_REQUIRED = 0xF4DEE5A2
    CURRENTLY_PLAYING_CK_REQUIRED = 0x4F834330
    CURRENTLY_PLAYING_CK_NOT_REQUIRED = 0xA5D6739E
    STOPPED = 0x5D4E3C2B  # ours: the player ended the playback (lease end), so its stream session closes at once


class Capability(IntFlag):
    """Low 64 bits of the 16-byte capabilities value (public)."""

    HDCP_TYPE1 = 1
    OFFLINE_KEY = 1 << 1
    CHECK_IN = 1 << 2
    OFFLINE_KEY_V2 = 1 << 3
    SECURITY_LEVEL_BASELINE = 1 << 4
    SECURITY_LEVEL_MAIN = 1 << 5


class EmuCapability(IntFlag):
    """High 64 bits of the capabilities value (reserved in the public layout; ours)."""

    AUDIO_ONLY = 1  # the "audio" device class: audio keys only
    HDCP_TYPE0 = 1 << 1  # the outputs support HDCP (Type 0)


class SyncFlag(IntFlag):
    REPORT = 1
    SECURE_INVALIDATION = 1 << 1
    SECURE_INVALIDATION_ALL = 1 << 2
    TITLE_ID_VALID = 1 << 3
    SUCCESS = 1 << 16
    OBJ_NOT_FOUND = 1 << 17
    OBJ_EXPIRED = 1 << 18


def _unpack(fmt: str, value: bytes, what: str) -> tuple[Any, ...]:
    try:
        return struct.unpack(fmt, value)
    except struct.error as exc:
        raise malformed(f"{what} value is {len(value)} bytes, expected {struct.calcsize(fmt)}") from exc


# ------------------------------------------------------------------- public layouts

@dataclass(frozen=True)
class Capabilities:
    flags: Capability
    emu: EmuCapability = EmuCapability(0)

    def encode(self) -> bytes:
        return struct.pack(">QQ", int(self.emu), int(self.flags))

    @classmethod
    def decode(cls, value: bytes) -> Capabilities:
        high, low = _unpack(">QQ", value, "capabilities")
        return cls(Capability(low & 0x3F), EmuCapability(high & 0x3))


@dataclass(frozen=True)
class MediaPlaybackState:
    """date (seconds, device clock), playback state, playback id."""

    date: int
    state: int
    playback_id: int

    def encode(self) -> bytes:
        return struct.pack(">IIQ", self.date, self.state, self.playback_id)

    @classmethod
    def decode(cls, value: bytes) -> MediaPlaybackState:
        return cls(*_unpack(">IIQ", value, "media playback state"))


@dataclass(frozen=True)
class KeyDuration:
    lease: int  # seconds; NO_LEASE when there is no lease
    rental: int  # seconds; NO_LEASE when there is no rental limit
    type: KeyDurationType

    def encode(self) -> bytes:
        return struct.pack(">IIII", self.lease, self.rental, int(self.type), KEY_DURATION_RESERVED)

    @classmethod
    def decode(cls, value: bytes) -> KeyDuration:
        lease, rental, kind, _ = _unpack(">IIII", value, "key duration")
        try:
            return cls(lease, rental, KeyDurationType(kind))
        except ValueError as exc:
            raise malformed(f"key duration type 0x{kind:08x} is unknown") from exc


@dataclass(frozen=True)
class OfflineKey:
    """Version 1: content id (16 bytes; we carry the license id), storage and playback durations."""

    content_id: bytes
    storage_duration: int  # seconds; 0 = unlimited
    playback_duration: int

    def encode(self) -> bytes:
        return struct.pack(">II16sII", OFFLINE_KEY_VERSION, 0, self.content_id, self.storage_duration,
                           self.playback_duration)

    @classmethod
    def decode(cls, value: bytes) -> OfflineKey:
        version, _, content_id, storage, playback = _unpack(">II16sII", value[:32], "offline key")
        if version not in (1, 2):
            raise malformed(f"offline key version {version} is not supported")
        return cls(content_id, storage, playback)


def encode_hdcp(value: HdcpType) -> bytes:
    return struct.pack(">Q", int(value))


def decode_hdcp(value: bytes) -> HdcpType:
    (raw,) = _unpack(">Q", value, "HDCP information")
    try:
        return HdcpType(raw)
    except ValueError as exc:
        raise malformed(f"HDCP type 0x{raw:016x} is unknown") from exc


def encode_security_level(level: SecurityLevel) -> bytes:
    return struct.pack(">IIQ", SECURITY_LEVEL_VERSION, 0, int(level))


def decode_security_level(value: bytes) -> SecurityLevel:
    _, _, raw = _unpack(">IIQ", value, "security level")
    try:
        return SecurityLevel(raw)
    except ValueError as exc:
        raise malformed(f"security level 0x{raw:016x} is unknown") from exc


@dataclass(frozen=True)
class OfflineSync:
    """Sync (check-in / secure invalidation): flags and the deleted content ids (16 bytes each)."""

    flags: SyncFlag
    deleted: tuple[bytes, ...] = ()
    server_challenge: int = 0
    title_id: bytes = bytes(16)
    duration_to_expiry: int = 0

    def encode(self) -> bytes:
        head = struct.pack(">IIQQ16sII", SYNC_VERSION, 0, self.server_challenge, int(self.flags), self.title_id,
                           self.duration_to_expiry, len(self.deleted))
        return head + b"".join(self.deleted)

    @classmethod
    def decode(cls, value: bytes) -> OfflineSync:
        _, _, challenge, flags, title, expiry, count = _unpack(">IIQQ16sII", value[:48], "offline sync")
        ids = value[48:]
        if len(ids) != 16 * count:
            raise malformed(f"offline sync lists {count} deleted records but carries {len(ids)} bytes of ids")
        return cls(SyncFlag(flags & 0x7000F), tuple(ids[i:i + 16] for i in range(0, len(ids), 16)),
                   challenge, title, expiry)


# ---------------------------------------------------------------------------- ours

TRACK_CODES = {Track.AUDIO: 1, Track.SD: 2, Track.HD: 3, Track.UHD1: 4}
_TRACK_BY_CODE = {v: k for k, v in TRACK_CODES.items()}
_KIND_CODES = {LicenseKind.TEMPORARY: 0, LicenseKind.PERSISTENT: 1}
_VERIFICATION_CODES = {PlatformVerification.HARDWARE_VERIFIED: 1, PlatformVerification.SOFTWARE_VERIFIED: 2,
                       PlatformVerification.TAMPERED: 3}


def encode_request_info(kind: LicenseKind) -> bytes:
    return struct.pack(">BBH", 1, _KIND_CODES[kind], 0)


def decode_request_info(value: bytes) -> LicenseKind:
    version, kind, _ = _unpack(">BBH", value, "request info")
    if version != 1 or kind not in (0, 1):
        raise malformed("request info: unknown version or license type")
    return LicenseKind.PERSISTENT if kind else LicenseKind.TEMPORARY


@dataclass(frozen=True)
class ContentKeyEntry:
    """One content key of a CKC: key id, track, its own requirements, IV, key under SK (AES-ECB)."""

    kid: bytes
    track: Track
    hdcp: HdcpType
    security_level: SecurityLevel
    iv: bytes
    encrypted_key: bytes

    def encode(self) -> bytes:
        return struct.pack(">16sB7xQQ16s16s", self.kid, TRACK_CODES[self.track], int(self.hdcp),
                           int(self.security_level), self.iv, self.encrypted_key)

    @classmethod
    def decode(cls, value: bytes) -> ContentKeyEntry:
        kid, track, hdcp, level, iv, key = _unpack(">16sB7xQQ16s16s", value, "content key entry")
        if track not in _TRACK_BY_CODE:
            raise malformed(f"content key entry: unknown track code {track}")
        try:
            return cls(kid, _TRACK_BY_CODE[track], HdcpType(hdcp), SecurityLevel(level), iv, key)
        except ValueError as exc:
            raise malformed("content key entry: unknown HDCP type or security level") from exc


@dataclass(frozen=True)
class LicenseInfo:
    license_id: bytes  # 16 bytes
    issued_at: int
    version: int
    kind: LicenseKind
    verification: PlatformVerification | None

    def encode(self) -> bytes:
        verification = _VERIFICATION_CODES.get(self.verification, 0) if self.verification else 0
        return struct.pack(">16sQIBB2x", self.license_id, self.issued_at, self.version, _KIND_CODES[self.kind],
                           verification)

    @classmethod
    def decode(cls, value: bytes) -> LicenseInfo:
        lid, issued, version, kind, verification = _unpack(">16sQIBB2x", value, "license info")
        by_code = {v: k for k, v in _VERIFICATION_CODES.items()}
        return cls(lid, issued, version, LicenseKind.PERSISTENT if kind else LicenseKind.TEMPORARY,
                   by_code.get(verification))


def _json(value: bytes, what: str) -> dict[str, Any]:
    try:
        doc = jsonsafe.loads(value)
    except ValueError as exc:
        raise malformed(f"{what} is not UTF-8 JSON") from exc
    if not isinstance(doc, dict):
        raise malformed(f"{what} is not a JSON object")
    return doc


def _field(doc: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise malformed(f"{what}: field {name!r} is missing or of the wrong type")
    return value


def _hex(doc: dict[str, Any], name: str, what: str) -> bytes:
    try:
        return bytes.fromhex(_field(doc, name, str, what))
    except ValueError as exc:
        raise malformed(f"{what}: field {name!r} is not hex") from exc


def encode_evidence(evidence: Evidence) -> bytes:
    doc = {
        "verified_boot": evidence.verified_boot, "bootloader_locked": evidence.bootloader_locked,
        "root_indicators": list(evidence.root_indicators), "app_package": evidence.app_package,
        "app_signing_digest": evidence.app_signing_digest.hex(), "app_recognized": evidence.app_recognized,
        "nonce": evidence.nonce.hex(), "timestamp": evidence.timestamp, "os_patch_level": evidence.os_patch_level,
        "from_tee": evidence.from_tee,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode_evidence(value: bytes) -> Evidence:
    what = "attestation evidence"
    doc = _json(value, what)
    indicators = _field(doc, "root_indicators", list, what)
    if not all(isinstance(item, str) for item in indicators):
        raise malformed(f"{what}: root_indicators must be strings")
    return Evidence(
        verified_boot=_field(doc, "verified_boot", str, what),
        bootloader_locked=_field(doc, "bootloader_locked", bool, what),
        root_indicators=tuple(indicators),
        app_package=_field(doc, "app_package", str, what),
        app_signing_digest=_hex(doc, "app_signing_digest", what),
        app_recognized=_field(doc, "app_recognized", bool, what),
        nonce=_hex(doc, "nonce", what),
        timestamp=_field(doc, "timestamp", int, what),
        os_patch_level=_field(doc, "os_patch_level", int, what),
        from_tee=_field(doc, "from_tee", bool, what),
    )


@dataclass(frozen=True)
class DestructionRecord:
    """The device's record that offline keys were deleted (signed with the SPC)."""

    license_ids: tuple[str, ...]
    content_id: str
    deleted_at: int

    def encode(self) -> bytes:
        doc = {"license_ids": list(self.license_ids), "content_id": self.content_id, "deleted_at": self.deleted_at}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, value: bytes) -> DestructionRecord:
        what = "destruction record"
        doc = _json(value, what)
        ids = _field(doc, "license_ids", list, what)
        if not ids or len(ids) > 100 or not all(isinstance(i, str) and len(i) == 32 for i in ids):
            raise malformed(f"{what}: license_ids must list 1..100 license ids (32 hex characters)")
        try:
            [bytes.fromhex(i) for i in ids]
        except ValueError as exc:
            raise malformed(f"{what}: a license id is not hex") from exc
        return cls(tuple(i.lower() for i in ids), _field(doc, "content_id", str, what),
                   _field(doc, "deleted_at", int, what))


@dataclass(frozen=True)
class InvalidationAck:
    released: tuple[str, ...]
    not_found: tuple[str, ...]

    def encode(self) -> bytes:
        return json.dumps({"released": list(self.released), "not_found": list(self.not_found)},
                          separators=(",", ":")).encode()

    @classmethod
    def decode(cls, value: bytes) -> InvalidationAck:
        doc = _json(value, "invalidation acknowledgement")
        released = _field(doc, "released", list, "invalidation acknowledgement")
        not_found = _field(doc, "not_found", list, "invalidation acknowledgement")
        return cls(tuple(map(str, released)), tuple(map(str, not_found)))
