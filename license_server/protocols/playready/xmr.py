"""The XMR-like binary license: a header and typed, nested objects.

Layout (all integers big-endian)::

    license := "XMR\\0" | u32 version (3) | object (the OUTER container)
    object  := u16 flags | u16 type | u32 length (header included) | payload
    flags   := 0x0001 must-understand, 0x0002 container (payload = objects)

The OUTER container holds the GLOBAL policy container, the PLAYBACK container,
the KEY MATERIAL container and, last, the SIGNATURE object. The signature is
AES-128-CMAC, under the license's integrity key, over every byte of the
license before the signature object. The integrity key travels with each
content key, ECIES-encrypted to the device (see ``crypto.ecc``): the wrapped
secret is ``integrity key (16) || content key (16)``, bound to the context
``rights id || KID``.

The object table is in :data:`OBJECTS` and in docs/playready.md.
Unknown objects without the must-understand flag are skipped; with it, the
license is refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from license_server import crypto
from license_server.errors import malformed

MAGIC, VERSION = b"XMR\x00", 3
MUST_UNDERSTAND, CONTAINER = 0x0001, 0x0002
MAX_LICENSE_BYTES = 64 * 1024
SIGNATURE_AES_CMAC = 1
KEY_ENCRYPTION_ECIES = 1
_HEADER = struct.Struct(">HHI")


class Obj(IntEnum):
    OUTER_CONTAINER = 0x0001
    GLOBAL_POLICY_CONTAINER = 0x0002
    PLAYBACK_CONTAINER = 0x0003
    KEY_MATERIAL_CONTAINER = 0x0004
    RIGHTS_ID = 0x0010
    ISSUE_DATE = 0x0011
    NONCE = 0x0012
    MINIMUM_SECURITY_LEVEL = 0x0013
    PERSISTENT = 0x0014
    EXPIRATION = 0x0015
    EXPIRE_AFTER_FIRST_PLAY = 0x0016
    REAL_TIME_EXPIRATION = 0x0017
    REMOVAL_DATE = 0x0018
    PLATFORM_VERIFICATION = 0x0019
    DEVICE_KEY_DIGEST = 0x001A
    PLAY_RIGHT = 0x0020
    OUTPUT_PROTECTION_LEVELS = 0x0021
    CONTENT_KEY = 0x0030
    SIGNATURE = 0x00FF


OBJECTS: dict[Obj, str] = {
    Obj.OUTER_CONTAINER: "container: GLOBAL_POLICY, PLAYBACK, KEY_MATERIAL, then SIGNATURE",
    Obj.GLOBAL_POLICY_CONTAINER: "container of the policy objects 0x0010-0x001A",
    Obj.PLAYBACK_CONTAINER: "container: PLAY_RIGHT, OUTPUT_PROTECTION_LEVELS",
    Obj.KEY_MATERIAL_CONTAINER: "container of CONTENT_KEY objects",
    Obj.RIGHTS_ID: "16 bytes: the license id",
    Obj.ISSUE_DATE: "u64 UNIX seconds",
    Obj.NONCE: "16 bytes: the request's LicenseNonce (non-persistent licenses only)",
    Obj.MINIMUM_SECURITY_LEVEL: "u16: 150, 2000 or 3000",
    Obj.PERSISTENT: "u8: 1 persistent (may be stored), 0 not",
    Obj.EXPIRATION: "u64 begin | u64 end, UNIX seconds (0: open)",
    Obj.EXPIRE_AFTER_FIRST_PLAY: "u32 seconds from the first play",
    Obj.REAL_TIME_EXPIRATION: "empty: expiry is enforced during playback too",
    Obj.REMOVAL_DATE: "u64 UNIX seconds: the license is removed from the store then",
    Obj.PLATFORM_VERIFICATION: "u8: 1 hardware verified, 2 software verified, 3 tampered",
    Obj.DEVICE_KEY_DIGEST: "32 bytes: SHA-256 of the device public key the keys are encrypted to",
    Obj.PLAY_RIGHT: "u8: 1 play allowed, 0 not",
    Obj.OUTPUT_PROTECTION_LEVELS: "5 x u16: compressed digital video, uncompressed digital video, "
                                  "analog video, compressed digital audio, uncompressed digital audio (0: none)",
    Obj.CONTENT_KEY: "16 bytes KID | u16 cipher (1 AESCTR, 2 AESCBC) | u16 key encryption (1 ECIES) "
                     "| u8 robustness | u8 hdcp | u8 track length | track | u16 length | encrypted key",
    Obj.SIGNATURE: "u16 algorithm (1 AES-128-CMAC) | u16 length | signature",
}

CIPHERS = {"AESCTR": 1, "AESCBC": 2}
CIPHER_NAMES = {v: k for k, v in CIPHERS.items()}
VERIFICATION_CODES = {"HARDWARE_VERIFIED": 1, "SOFTWARE_VERIFIED": 2, "TAMPERED": 3}
VERIFICATION_NAMES = {v: k for k, v in VERIFICATION_CODES.items()}


@dataclass(frozen=True)
class OutputProtection:
    compressed_digital_video: int = 0
    uncompressed_digital_video: int = 0
    analog_video: int = 0
    compressed_digital_audio: int = 0
    uncompressed_digital_audio: int = 0

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.compressed_digital_video, self.uncompressed_digital_video, self.analog_video,
                self.compressed_digital_audio, self.uncompressed_digital_audio)


@dataclass(frozen=True)
class ContentKey:
    kid: bytes
    cipher: str  # AESCTR | AESCBC
    track: str
    robustness: int
    hdcp: int
    encrypted_key: bytes = field(repr=False)


@dataclass(frozen=True)
class XmrLicense:
    rights_id: bytes
    issue_date: int
    persistent: bool
    min_security_level: int
    keys: tuple[ContentKey, ...]
    device_key_digest: bytes
    begin: int = 0
    end: int = 0
    expire_after_first_play: int = 0
    real_time_expiration: bool = False
    removal_date: int = 0
    nonce: bytes | None = None
    play_right: bool = True
    platform_verification: str | None = None
    output_protection: OutputProtection | None = None

    @property
    def license_id(self) -> str:
        return self.rights_id.hex()


def key_context(rights_id: bytes, kid: bytes) -> bytes:
    """The ECIES context that binds an encrypted key to its license and KID."""
    return rights_id + kid


# ----------------------------------------------------------------- encode

def _obj(kind: Obj, payload: bytes, flags: int = MUST_UNDERSTAND) -> bytes:
    return _HEADER.pack(flags, int(kind), _HEADER.size + len(payload)) + payload


def _container(kind: Obj, *objects: bytes) -> bytes:
    return _obj(kind, b"".join(objects), MUST_UNDERSTAND | CONTAINER)


def encode(lic: XmrLicense, integrity_key: bytes) -> bytes:
    """Serialize and sign ``lic`` (AES-CMAC with ``integrity_key``)."""
    if len(lic.rights_id) != 16 or len(lic.device_key_digest) != 32:
        raise ValueError("rights id must be 16 bytes and the device key digest 32")
    policy = [
        _obj(Obj.RIGHTS_ID, lic.rights_id),
        _obj(Obj.ISSUE_DATE, struct.pack(">Q", lic.issue_date)),
        _obj(Obj.PERSISTENT, bytes([1 if lic.persistent else 0])),
        _obj(Obj.MINIMUM_SECURITY_LEVEL, struct.pack(">H", lic.min_security_level)),
        _obj(Obj.DEVICE_KEY_DIGEST, lic.device_key_digest),
    ]
    if lic.nonce is not None:
        policy.append(_obj(Obj.NONCE, lic.nonce))
    if lic.begin or lic.end:
        policy.append(_obj(Obj.EXPIRATION, struct.pack(">QQ", lic.begin, lic.end)))
    if lic.expire_after_first_play:
        policy.append(_obj(Obj.EXPIRE_AFTER_FIRST_PLAY, struct.pack(">I", lic.expire_after_first_play)))
    if lic.real_time_expiration:
        policy.append(_obj(Obj.REAL_TIME_EXPIRATION, b""))
    if lic.removal_date:
        policy.append(_obj(Obj.REMOVAL_DATE, struct.pack(">Q", lic.removal_date)))
    if lic.platform_verification:
        policy.append(_obj(Obj.PLATFORM_VERIFICATION, bytes([VERIFICATION_CODES[lic.platform_verification]]), 0))
    playback = [_obj(Obj.PLAY_RIGHT, bytes([1 if lic.play_right else 0]))]
    if lic.output_protection is not None:
        playback.append(_obj(Obj.OUTPUT_PROTECTION_LEVELS, struct.pack(">5H", *lic.output_protection.as_tuple())))
    keys = [_obj(Obj.CONTENT_KEY, _content_key(k)) for k in lic.keys]
    body = (_container(Obj.GLOBAL_POLICY_CONTAINER, *policy) + _container(Obj.PLAYBACK_CONTAINER, *playback)
            + _container(Obj.KEY_MATERIAL_CONTAINER, *keys))
    signature_size = _HEADER.size + 4 + 16
    outer_header = _HEADER.pack(MUST_UNDERSTAND | CONTAINER, int(Obj.OUTER_CONTAINER),
                                _HEADER.size + len(body) + signature_size)
    signed = MAGIC + struct.pack(">I", VERSION) + outer_header + body
    tag = crypto.aes_cmac(integrity_key, signed)
    return signed + _obj(Obj.SIGNATURE, struct.pack(">HH", SIGNATURE_AES_CMAC, len(tag)) + tag)


def _content_key(key: ContentKey) -> bytes:
    track = key.track.encode("ascii")
    return (key.kid + struct.pack(">HHBBB", CIPHERS[key.cipher], KEY_ENCRYPTION_ECIES, key.robustness, key.hdcp,
                                  len(track)) + track + struct.pack(">H", len(key.encrypted_key)) + key.encrypted_key)


# ----------------------------------------------------------------- decode

@dataclass(frozen=True)
class ParsedLicense:
    license: XmrLicense
    signed: bytes  # the bytes the signature covers
    signature: bytes


def decode(data: bytes) -> ParsedLicense:
    """Parse a license (structure only; the caller verifies the signature)."""
    if len(data) > MAX_LICENSE_BYTES:
        raise malformed("license is too large")
    if len(data) < 8 + _HEADER.size or data[:4] != MAGIC:
        raise malformed("not an XMR license")
    if struct.unpack_from(">I", data, 4)[0] != VERSION:
        raise malformed("unsupported XMR version")
    objects = _objects(data, 8, len(data))
    if len(objects) != 1 or objects[0][0] != Obj.OUTER_CONTAINER:
        raise malformed("XMR license must hold exactly one outer container")
    _, start, end = objects[0]
    inner = _objects(data, start, end)
    if not inner or inner[-1][0] != Obj.SIGNATURE:
        raise malformed("the signature must be the last object of the license")
    found: dict[int, bytes] = {}
    keys: list[ContentKey] = []
    for kind, s, e in inner[:-1]:
        if kind not in (Obj.GLOBAL_POLICY_CONTAINER, Obj.PLAYBACK_CONTAINER, Obj.KEY_MATERIAL_CONTAINER):
            continue
        for sub, ss, se in _objects(data, s, e):
            if sub == Obj.CONTENT_KEY:
                keys.append(_decode_key(data[ss:se]))
            elif sub in found:
                raise malformed(f"XMR object {Obj(sub).name} appears twice")
            else:
                found[sub] = data[ss:se]
    sig_payload = data[inner[-1][1]:inner[-1][2]]
    if len(sig_payload) < 4 or struct.unpack_from(">HH", sig_payload) != (SIGNATURE_AES_CMAC, len(sig_payload) - 4):
        raise malformed("XMR signature object is invalid")
    return ParsedLicense(_license(found, tuple(keys)), data[:inner[-1][1] - _HEADER.size], sig_payload[4:])


def verify_signature(parsed: ParsedLicense, integrity_key: bytes) -> bool:
    return crypto.constant_time_equal(crypto.aes_cmac(integrity_key, parsed.signed), parsed.signature)


def _objects(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """``(type, payload start, payload end)`` of each object in ``data[start:end]``."""
    out, offset = [], start
    while offset < end:
        if offset + _HEADER.size > end:
            raise malformed("XMR object header is truncated")
        flags, kind, length = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > end:
            raise malformed("XMR object length is out of bounds")
        if kind in Obj._value2member_map_:
            out.append((kind, offset + _HEADER.size, offset + length))
        elif flags & MUST_UNDERSTAND:
            raise malformed(f"XMR object type 0x{kind:04x} is unknown and must be understood")
        offset += length
    return out


def _fixed(found: dict[int, bytes], kind: Obj, fmt: str) -> tuple | None:
    if kind not in found:
        return None
    try:
        return struct.unpack(fmt, found[kind])
    except struct.error as exc:
        raise malformed(f"XMR object {kind.name} has the wrong size") from exc


def _license(found: dict[int, bytes], keys: tuple[ContentKey, ...]) -> XmrLicense:
    for required in (Obj.RIGHTS_ID, Obj.ISSUE_DATE, Obj.PERSISTENT, Obj.MINIMUM_SECURITY_LEVEL,
                     Obj.DEVICE_KEY_DIGEST, Obj.PLAY_RIGHT):
        if required not in found:
            raise malformed(f"XMR license lacks {required.name}")
    (rights_id,) = _fixed(found, Obj.RIGHTS_ID, ">16s")
    (digest,) = _fixed(found, Obj.DEVICE_KEY_DIGEST, ">32s")
    begin, end = _fixed(found, Obj.EXPIRATION, ">QQ") or (0, 0)
    nonce = _fixed(found, Obj.NONCE, ">16s")
    verification = _fixed(found, Obj.PLATFORM_VERIFICATION, ">B")
    opl = _fixed(found, Obj.OUTPUT_PROTECTION_LEVELS, ">5H")
    if Obj.REAL_TIME_EXPIRATION in found and found[Obj.REAL_TIME_EXPIRATION]:
        raise malformed("XMR REAL_TIME_EXPIRATION must be empty")
    return XmrLicense(
        rights_id=rights_id,
        issue_date=_fixed(found, Obj.ISSUE_DATE, ">Q")[0],
        persistent=_fixed(found, Obj.PERSISTENT, ">B")[0] == 1,
        min_security_level=_fixed(found, Obj.MINIMUM_SECURITY_LEVEL, ">H")[0],
        keys=keys,
        device_key_digest=digest,
        begin=begin,
        end=end,
        expire_after_first_play=(_fixed(found, Obj.EXPIRE_AFTER_FIRST_PLAY, ">I") or (0,))[0],
        real_time_expiration=Obj.REAL_TIME_EXPIRATION in found,
        removal_date=(_fixed(found, Obj.REMOVAL_DATE, ">Q") or (0,))[0],
        nonce=nonce[0] if nonce else None,
        play_right=_fixed(found, Obj.PLAY_RIGHT, ">B")[0] == 1,
        platform_verification=VERIFICATION_NAMES.get(verification[0]) if verification else None,
        output_protection=OutputProtection(*opl) if opl else None,
    )


def _decode_key(payload: bytes) -> ContentKey:
    try:
        kid = payload[:16]
        cipher, encryption, robustness, hdcp, track_len = struct.unpack_from(">HHBBB", payload, 16)
        offset = 16 + 7
        track = payload[offset:offset + track_len].decode("ascii")
        offset += track_len
        (enc_len,) = struct.unpack_from(">H", payload, offset)
        encrypted = payload[offset + 2:offset + 2 + enc_len]
    except (struct.error, UnicodeDecodeError) as exc:
        raise malformed("XMR CONTENT_KEY object is truncated") from exc
    if len(kid) != 16 or len(encrypted) != enc_len or offset + 2 + enc_len != len(payload):
        raise malformed("XMR CONTENT_KEY object has the wrong size")
    if cipher not in CIPHER_NAMES or encryption != KEY_ENCRYPTION_ECIES:
        raise malformed("XMR CONTENT_KEY names an unknown cipher or key encryption")
    return ContentKey(kid, CIPHER_NAMES[cipher], track, robustness, hdcp, encrypted)
