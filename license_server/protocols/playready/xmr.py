"""XMR licenses in the real layout (one content key per license, as PlayReady issues them).

Layout (all integers big-endian)::

    license := "XMR\\0" | u32 version (3) | 16-byte rights id | OUTER container
    object  := u16 flags | u16 type | u32 length (header included) | payload
    flags   := 0x0001 must-understand, 0x0002 container (payload = objects)

The OUTER container (0x0001) holds the GLOBAL_POLICY container (0x0002), the
PLAYBACK_POLICY container (0x0004, present when playing is allowed), the
KEY_MATERIAL container (0x0009) and, last, the SIGNATURE object (0x000B):
AES-128-CMAC under the content integrity key over every byte before the
signature object. The integrity key and the content key travel together as
the x coordinate of a P-256 point, ECC-256 ElGamal-encrypted to the device's
encryption key (:mod:`license_server.crypto.elgamal`). Object table: :data:`OBJECTS`.
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
OPEN_END = 0xFFFFFFFF
CANNOT_PERSIST = 0x0001  # SETTINGS rights bit
SIGNATURE_AES_OMAC1 = 1
CURVE_ECC256 = 1
CIPHER_ECC256 = 3
METADATA_GUID = bytes.fromhex("5d2c8e0a7b1f4e3a9c6d01e2f3a4b5c6")  # ours: track, robustness, hdcp, verification
_HEADER = struct.Struct(">HHI")


class Obj(IntEnum):
    OUTER_CONTAINER = 0x0001
    GLOBAL_POLICY_CONTAINER = 0x0002
    PLAYBACK_POLICY_CONTAINER = 0x0004
    OUTPUT_PROTECTION = 0x0005
    KEY_MATERIAL_CONTAINER = 0x0009
    CONTENT_KEY = 0x000A
    SIGNATURE = 0x000B
    SETTINGS = 0x000D
    EXPIRATION = 0x0012
    ISSUE_DATE = 0x0013
    ECC_DEVICE_KEY = 0x002A
    POLICY_METADATA = 0x002C
    EXPIRATION_AFTER_FIRST_PLAY = 0x0030
    SECURITY_LEVEL = 0x0034
    REMOVAL_DATE = 0x0050
    REAL_TIME_EXPIRATION = 0x0055


CONTAINERS = (Obj.OUTER_CONTAINER, Obj.GLOBAL_POLICY_CONTAINER, Obj.PLAYBACK_POLICY_CONTAINER,
              Obj.KEY_MATERIAL_CONTAINER)
OBJECTS: dict[Obj, str] = {
    Obj.OUTER_CONTAINER: "container: GLOBAL_POLICY, PLAYBACK_POLICY, KEY_MATERIAL, then SIGNATURE",
    Obj.GLOBAL_POLICY_CONTAINER: "container of the policy objects",
    Obj.PLAYBACK_POLICY_CONTAINER: "container (present: playing allowed): OUTPUT_PROTECTION",
    Obj.OUTPUT_PROTECTION: "5 x u16 minimum OPLs: compressed / uncompressed digital video, analog video, "
                           "compressed / uncompressed digital audio",
    Obj.KEY_MATERIAL_CONTAINER: "container: CONTENT_KEY, ECC_DEVICE_KEY",
    Obj.CONTENT_KEY: "16-byte KID (little-endian GUID) | u16 key type (1 AES-128-CTR, 5 AES-128-CBC) "
                     "| u16 cipher type (3 ECC-256) | u16 length (128) | ElGamal ciphertext",
    Obj.SIGNATURE: "u16 type (1 AES-OMAC1) | u16 length (16) | AES-CMAC",
    Obj.SETTINGS: "u16 rights: 0x0001 cannot persist",
    Obj.EXPIRATION: "u32 begin | u32 end, UNIX seconds (0 / 0xFFFFFFFF: open)",
    Obj.ISSUE_DATE: "u32 UNIX seconds",
    Obj.ECC_DEVICE_KEY: "u16 curve (1 ECC-256) | u16 length (64) | the device encryption key X|Y",
    Obj.POLICY_METADATA: "16-byte metadata type | data: ours carries track, robustness, hdcp, verification",
    Obj.EXPIRATION_AFTER_FIRST_PLAY: "u32 seconds from the first play",
    Obj.SECURITY_LEVEL: "u16 minimum security level: 150, 2000 or 3000",
    Obj.REMOVAL_DATE: "u32 UNIX seconds: the license is removed from the store then",
    Obj.REAL_TIME_EXPIRATION: "empty: expiry is enforced during playback too",
}
KEY_TYPES = {"AESCTR": 1, "AESCBC": 5}
KEY_TYPE_NAMES = {v: k for k, v in KEY_TYPES.items()}


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
    kid: bytes  # big-endian (UUID.bytes), as the catalog holds it
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
    device_key: bytes  # 64-byte X|Y of the device's encryption key
    begin: int = 0
    end: int = 0
    expire_after_first_play: int = 0
    real_time_expiration: bool = False
    removal_date: int = 0
    play_right: bool = True
    platform_verification: str | None = None
    output_protection: OutputProtection | None = None

    @property
    def license_id(self) -> str:
        return self.rights_id.hex()


def kid_le(kid: bytes) -> bytes:
    """Big-endian GUID bytes <-> the little-endian form XMR carries (an involution)."""
    return kid[3::-1] + kid[5:3:-1] + kid[7:5:-1] + kid[8:]


# ----------------------------------------------------------------- encode

def _obj(kind: Obj, payload: bytes, flags: int = MUST_UNDERSTAND) -> bytes:
    return _HEADER.pack(flags, int(kind), _HEADER.size + len(payload)) + payload


def _container(kind: Obj, *objects: bytes) -> bytes:
    return _obj(kind, b"".join(objects), MUST_UNDERSTAND | CONTAINER)


def _metadata(key: ContentKey, verification: str | None) -> bytes:
    text = f"track={key.track};robustness={key.robustness};hdcp={key.hdcp};verification={verification or ''}"
    return METADATA_GUID + text.encode("ascii")


def encode(lic: XmrLicense, integrity_key: bytes) -> bytes:
    """Serialize and sign a one-key license (AES-CMAC with ``integrity_key``)."""
    if len(lic.rights_id) != 16 or len(lic.device_key) != 64 or len(lic.keys) != 1:
        raise ValueError("a license has a 16-byte rights id, a 64-byte device key and one content key")
    key = lic.keys[0]
    policy = [_obj(Obj.SETTINGS, struct.pack(">H", 0 if lic.persistent else CANNOT_PERSIST)),
              _obj(Obj.SECURITY_LEVEL, struct.pack(">H", lic.min_security_level))]
    if lic.real_time_expiration:  # before ISSUE_DATE: clients that skip empty objects lose nothing they need
        policy.append(_obj(Obj.REAL_TIME_EXPIRATION, b""))
    policy.append(_obj(Obj.ISSUE_DATE, struct.pack(">I", lic.issue_date)))
    if lic.begin or lic.end:
        policy.append(_obj(Obj.EXPIRATION, struct.pack(">II", lic.begin, lic.end or OPEN_END)))
    if lic.expire_after_first_play:
        policy.append(_obj(Obj.EXPIRATION_AFTER_FIRST_PLAY, struct.pack(">I", lic.expire_after_first_play)))
    if lic.removal_date:
        policy.append(_obj(Obj.REMOVAL_DATE, struct.pack(">I", lic.removal_date)))
    policy.append(_obj(Obj.POLICY_METADATA, _metadata(key, lic.platform_verification), 0))
    parts = [_container(Obj.GLOBAL_POLICY_CONTAINER, *policy)]
    if lic.play_right:
        opl = lic.output_protection or OutputProtection()
        parts.append(_container(Obj.PLAYBACK_POLICY_CONTAINER,
                                _obj(Obj.OUTPUT_PROTECTION, struct.pack(">5H", *opl.as_tuple()))))
    content = kid_le(key.kid) + struct.pack(">HHH", KEY_TYPES[key.cipher], CIPHER_ECC256, len(key.encrypted_key)) \
        + key.encrypted_key
    parts.append(_container(Obj.KEY_MATERIAL_CONTAINER, _obj(Obj.CONTENT_KEY, content),
                            _obj(Obj.ECC_DEVICE_KEY, struct.pack(">HH", CURVE_ECC256, 64) + lic.device_key)))
    body = b"".join(parts)
    signature_size = _HEADER.size + 4 + 16
    outer = _HEADER.pack(MUST_UNDERSTAND | CONTAINER, int(Obj.OUTER_CONTAINER),
                         _HEADER.size + len(body) + signature_size)
    signed = MAGIC + struct.pack(">I", VERSION) + lic.rights_id + outer + body
    tag = crypto.aes_cmac(integrity_key, signed)
    return signed + _obj(Obj.SIGNATURE, struct.pack(">HH", SIGNATURE_AES_OMAC1, len(tag)) + tag)


# ----------------------------------------------------------------- decode

@dataclass(frozen=True)
class ParsedLicense:
    license: XmrLicense
    signed: bytes  # the bytes the signature covers
    signature: bytes


def split(blob: bytes) -> list[bytes]:
    """Licenses stored back to back (each is self-delimiting by its outer container)."""
    out, offset = [], 0
    while offset < len(blob):
        if offset + 32 > len(blob) or blob[offset:offset + 4] != MAGIC:
            raise malformed("not a sequence of XMR licenses")
        (length,) = struct.unpack_from(">I", blob, offset + 28)
        out.append(blob[offset:offset + 24 + length])
        offset += 24 + length
    return out


def decode(data: bytes) -> ParsedLicense:
    """Parse a license (structure only; the caller verifies the signature)."""
    if len(data) > MAX_LICENSE_BYTES:
        raise malformed("license is too large")
    if len(data) < 24 + _HEADER.size or data[:4] != MAGIC:
        raise malformed("not an XMR license")
    if struct.unpack_from(">I", data, 4)[0] != VERSION:
        raise malformed("unsupported XMR version")
    objects = _objects(data, 24, len(data))
    if len(objects) != 1 or objects[0][0] != Obj.OUTER_CONTAINER:
        raise malformed("XMR license must hold exactly one outer container")
    inner = _objects(data, objects[0][1], objects[0][2])
    if not inner or inner[-1][0] != Obj.SIGNATURE:
        raise malformed("the signature must be the last object of the license")
    found: dict[int, bytes] = {}
    for kind, start, end in inner[:-1]:
        if kind in CONTAINERS:
            found[kind] = b""
            for sub, s, e in _objects(data, start, end):
                if sub in found or sub in CONTAINERS:
                    raise malformed(f"XMR object 0x{sub:04x} is misplaced or appears twice")
                found[sub] = data[s:e]
    sig = data[inner[-1][1]:inner[-1][2]]
    if len(sig) != 20 or struct.unpack_from(">HH", sig) != (SIGNATURE_AES_OMAC1, 16):
        raise malformed("XMR signature object is invalid")
    return ParsedLicense(_license(data[8:24], found), data[:inner[-1][1] - _HEADER.size], sig[4:])


def verify_signature(parsed: ParsedLicense, integrity_key: bytes) -> bool:
    return crypto.constant_time_equal(crypto.aes_cmac(integrity_key, parsed.signed), parsed.signature)


def _objects(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
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


def _fixed(found: dict[int, bytes], kind: Obj, fmt: str) -> tuple[int, ...]:
    try:
        return struct.unpack(fmt, found[kind])
    except struct.error as exc:
        raise malformed(f"XMR object {kind.name} has the wrong size") from exc


def _license(rights_id: bytes, found: dict[int, bytes]) -> XmrLicense:
    for required in (Obj.SETTINGS, Obj.SECURITY_LEVEL, Obj.ISSUE_DATE, Obj.CONTENT_KEY, Obj.ECC_DEVICE_KEY):
        if required not in found:
            raise malformed(f"XMR license lacks {required.name}")
    if found.get(Obj.REAL_TIME_EXPIRATION, b""):
        raise malformed("XMR REAL_TIME_EXPIRATION must be empty")
    ecc_key = found[Obj.ECC_DEVICE_KEY]
    curve, key_length = struct.unpack_from(">HH", ecc_key) if len(ecc_key) >= 4 else (0, 0)
    device_key = ecc_key[4:]
    if curve != CURVE_ECC256 or key_length != 64 or len(device_key) != 64:
        raise malformed("XMR ECC_DEVICE_KEY is not an ECC-256 key")
    meta = dict(item.split("=", 1) for item in _metadata_text(found).split(";") if "=" in item)
    begin, end = _fixed(found, Obj.EXPIRATION, ">II") if Obj.EXPIRATION in found else (0, 0)
    opl = _fixed(found, Obj.OUTPUT_PROTECTION, ">5H") if Obj.OUTPUT_PROTECTION in found else None
    return XmrLicense(
        rights_id=rights_id,
        issue_date=_fixed(found, Obj.ISSUE_DATE, ">I")[0],
        persistent=not _fixed(found, Obj.SETTINGS, ">H")[0] & CANNOT_PERSIST,
        min_security_level=_fixed(found, Obj.SECURITY_LEVEL, ">H")[0],
        keys=(_content_key(found[Obj.CONTENT_KEY], meta),),
        device_key=device_key,
        begin=begin, end=0 if end == OPEN_END else end,
        expire_after_first_play=_fixed(found, Obj.EXPIRATION_AFTER_FIRST_PLAY, ">I")[0]
        if Obj.EXPIRATION_AFTER_FIRST_PLAY in found else 0,
        real_time_expiration=Obj.REAL_TIME_EXPIRATION in found,
        removal_date=_fixed(found, Obj.REMOVAL_DATE, ">I")[0] if Obj.REMOVAL_DATE in found else 0,
        play_right=Obj.PLAYBACK_POLICY_CONTAINER in found,
        platform_verification=meta.get("verification") or None,
        output_protection=OutputProtection(*opl) if opl and any(opl) else None,
    )


def _metadata_text(found: dict[int, bytes]) -> str:
    raw = found.get(Obj.POLICY_METADATA, b"")
    if raw[:16] != METADATA_GUID:
        return ""
    try:
        return raw[16:].decode("ascii")
    except UnicodeDecodeError as exc:
        raise malformed("XMR policy metadata is not ASCII") from exc


def _content_key(payload: bytes, meta: dict[str, str]) -> ContentKey:
    if len(payload) < 22:
        raise malformed("XMR CONTENT_KEY object is truncated")
    key_type, cipher, length = struct.unpack_from(">HHH", payload, 16)
    if key_type not in KEY_TYPE_NAMES or cipher != CIPHER_ECC256 or length != len(payload) - 22:
        raise malformed("XMR CONTENT_KEY names an unknown key type or cipher, or has the wrong size")
    try:
        robustness, hdcp = int(meta.get("robustness", "0")), int(meta.get("hdcp", "0"))
    except ValueError as exc:
        raise malformed("XMR policy metadata is invalid") from exc
    return ContentKey(kid_le(payload[:16]), KEY_TYPE_NAMES[key_type], meta.get("track", "SD"), robustness, hdcp,
                      payload[22:])
