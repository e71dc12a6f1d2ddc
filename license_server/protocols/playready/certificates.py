"""PlayReady BCert certificates and chains (the real binary layout), ECC P-256.

Layout (all integers big-endian)::

    chain  := "CHAI" | u32 version (1) | u32 total length | u32 flags (0) | u32 count | count x cert
    cert   := "CERT" | u32 version (1) | u32 total length | u32 signed length | objects
    object := u16 flags (1 must-understand, 2 container) | u16 tag | u32 length (header included) | payload

Objects (tags): BASIC 1 (cert id 16, security level u32, flags u32, type u32,
SHA-256 of the signing key 32, expiration u32, client id 16), DEVICE 4 (max
license, max header, max chain depth: u32 each), FEATURE 5 (u32 count, u32
features), KEY 6 (u32 count; each key: u16 type 1 = ECC-256, u16 length in
bits 512, u32 flags, 64-byte X|Y, u32 usage count, u32 usages), MANUFACTURER 7
(u32 flags, then three u32-length strings padded to 4: manufacturer, model
name, model number), SIGNATURE 8, last (u16 type 1 = P-256, u16 size 64,
ECDSA-SHA256 raw r|s over the first ``signed length`` bytes, u32 issuer key
length in bits 512, the issuer's 64-byte public key).

Our chains are leaf first: the DEVICE certificate (signing key usage 1 and
encryption key usage 2, separate keys) signed by its model's ISSUER
certificate, which our emulated root signs. The root itself is not in a
chain: the verifier holds its public key (``keys/playready/``). The model's
system id travels as the MANUFACTURER model number (decimal), its name as
the model name. Sans-I/O; ``now`` is an argument.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from license_server import crypto
from license_server.crypto import ecc
from license_server.protocols.playready import SECURITY_LEVELS

CHAIN_MAGIC, CERT_MAGIC, VERSION = b"CHAI", b"CERT", 1
MUST_UNDERSTAND = 0x0001
MANUFACTURER = "drm-license-emulator (PUBLIC TEST PKI)"
NO_EXPIRY = 0xFFFFFFFF
MAX_CHAIN_BYTES = 16 * 1024
_OBJ = struct.Struct(">HHI")
_SIGNATURE_OBJECT_BYTES = _OBJ.size + 4 + 64 + 4 + 64


class CertType(IntEnum):
    DEVICE = 2
    ISSUER = 4


class Tag(IntEnum):
    BASIC = 1
    DEVICE = 4
    FEATURE = 5
    KEY = 6
    MANUFACTURER = 7
    SIGNATURE = 8


class KeyUsage(IntEnum):
    SIGN = 1
    ENCRYPT_KEY = 2
    ISSUER_ALL = 4
    ISSUER_DEVICE = 6


class Feature(IntEnum):
    SECURE_CLOCK = 4
    SUPPORTS_CRLS = 9
    SUPPORTS_PR3_FEATURES = 13


DEVICE_FEATURES = (Feature.SECURE_CLOCK, Feature.SUPPORTS_CRLS, Feature.SUPPORTS_PR3_FEATURES)


class CertificateError(Exception):
    """The chain does not parse, does not verify, or does not end at the root."""


@dataclass(frozen=True)
class Certificate:
    cert_type: CertType
    cert_id: bytes
    security_level: int
    expiration: int  # NO_EXPIRY: none
    keys: tuple[tuple[bytes, tuple[int, ...]], ...]  # (64-byte X|Y, usages)
    features: tuple[int, ...]
    manufacturer: str
    model_name: str
    model_number: str
    issuer_key: bytes  # 64-byte X|Y
    signed: bytes
    signature: bytes
    key_digest: bytes = b""  # BASIC: SHA-256 of the signing key

    def encode(self) -> bytes:
        return self.signed + _signature_object(self.signature, self.issuer_key)

    def key_for(self, usage: int) -> bytes | None:
        return next((key for key, usages in self.keys if usage in usages), None)


@dataclass(frozen=True)
class ChainInfo:
    """What a verified chain vouches for (the leaf and its model)."""

    serial: bytes
    signing_key: bytes  # 65-byte uncompressed point
    encryption_key: bytes  # 65-byte uncompressed point
    system_id: int
    security_level: int
    model: str
    not_before: int
    not_after: int  # earliest expiry in the chain; 0 = none

    @property
    def device_id(self) -> str:
        return self.serial.hex()

    @property
    def public_key(self) -> bytes:
        """The key challenges and reports are signed with."""
        return self.signing_key


def xy(point: bytes) -> bytes:
    """A 65-byte uncompressed point as the 64-byte X|Y BCert carries."""
    return point[1:] if len(point) == 65 else point


def uncompressed(key: bytes) -> bytes:
    return b"\x04" + key if len(key) == 64 else key


# ----------------------------------------------------------------- encode

def _obj(tag: int, payload: bytes, flags: int = MUST_UNDERSTAND) -> bytes:
    return _OBJ.pack(flags, tag, _OBJ.size + len(payload)) + payload


def _string(value: str) -> bytes:
    raw = value.encode("utf-8") + b"\x00"
    return struct.pack(">I", len(raw)) + raw + b"\x00" * (-len(raw) % 4)


def _signature_object(signature: bytes, issuer_key: bytes) -> bytes:
    return _obj(Tag.SIGNATURE, struct.pack(">HH", 1, len(signature)) + signature
                + struct.pack(">I", len(issuer_key) * 8) + issuer_key)


def issue(*, cert_type: CertType, security_level: int, cert_id: bytes, keys: list[tuple[bytes, tuple[int, ...]]],
          model_name: str, system_id: int, issuer_key_pem: bytes, expiration: int = NO_EXPIRY,
          features: tuple[int, ...] = ()) -> Certificate:
    """Build and sign one certificate; ``keys`` are (point, usages), the first being the signing key."""
    if security_level not in SECURITY_LEVELS:
        raise ValueError(f"security level must be one of {SECURITY_LEVELS}")
    if len(cert_id) != 16 or not keys:
        raise ValueError("bad certificate id or key list")
    keys = [(xy(k), tuple(u)) for k, u in keys]
    basic = cert_id + struct.pack(">III", security_level, 0, int(cert_type)) + crypto.sha256(keys[0][0]) \
        + struct.pack(">I", expiration) + bytes(16)
    objects = [_obj(Tag.BASIC, basic)]
    if cert_type is CertType.DEVICE:
        objects.append(_obj(Tag.DEVICE, struct.pack(">III", 10240, 15360, 2)))
    feature_list = b"".join(struct.pack(">I", f) for f in features)
    objects.append(_obj(Tag.FEATURE, struct.pack(">I", len(features)) + feature_list))
    key_list = b"".join(struct.pack(">HHI", 1, 512, 0) + key + struct.pack(">I", len(usages))
                        + b"".join(struct.pack(">I", u) for u in usages) for key, usages in keys)
    objects.append(_obj(Tag.KEY, struct.pack(">I", len(keys)) + key_list))
    objects.append(_obj(Tag.MANUFACTURER, struct.pack(">I", 0) + _string(MANUFACTURER) + _string(model_name)
                        + _string(str(system_id))))
    body = b"".join(objects)
    signed_length = 16 + len(body)
    signed = CERT_MAGIC + struct.pack(">III", VERSION, signed_length + _SIGNATURE_OBJECT_BYTES, signed_length) + body
    issuer_key = xy(ecc.ec_public_point(issuer_key_pem))
    return decode_certificate(signed + _signature_object(ecc.ecdsa_sign(issuer_key_pem, signed), issuer_key))


def encode_chain(certificates: list[Certificate] | tuple[Certificate, ...]) -> bytes:
    body = b"".join(c.encode() for c in certificates)
    return CHAIN_MAGIC + struct.pack(">IIII", VERSION, 20 + len(body), 0, len(certificates)) + body


# ----------------------------------------------------------------- decode

def _u32s(data: bytes, offset: int, count: int) -> tuple[int, ...]:
    return struct.unpack_from(f">{count}I", data, offset)


def _strings(payload: bytes, offset: int, count: int) -> list[str]:
    out = []
    for _ in range(count):
        (length,) = struct.unpack_from(">I", payload, offset)
        raw = payload[offset + 4:offset + 4 + length]
        if len(raw) != length:
            raise CertificateError("manufacturer string is truncated")
        out.append(raw.rstrip(b"\x00").decode("utf-8"))
        offset += 4 + length + (-length % 4)
    return out


def decode_certificate(data: bytes) -> Certificate:
    try:
        return _decode_certificate(data)
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise CertificateError(f"certificate does not parse: {exc}") from exc


def _decode_certificate(data: bytes) -> Certificate:
    if len(data) < 16 or data[:4] != CERT_MAGIC:
        raise CertificateError("not a BCert certificate")
    version, total, signed_length = struct.unpack_from(">III", data, 4)
    if version != VERSION or total != len(data) or not 16 <= signed_length <= total:
        raise CertificateError("certificate header or length is invalid")
    found: dict[int, bytes] = {}
    offset, signature_at = 16, None
    while offset < len(data):
        flags, tag, length = _OBJ.unpack_from(data, offset)
        if length < _OBJ.size or offset + length > len(data):
            raise CertificateError("certificate object length is out of bounds")
        if tag in found:
            raise CertificateError(f"certificate object {tag} appears twice")
        if tag in Tag._value2member_map_:
            found[tag] = data[offset + _OBJ.size:offset + length]
            if tag == Tag.SIGNATURE:
                signature_at = offset
        elif flags & MUST_UNDERSTAND:
            raise CertificateError(f"certificate object {tag} is unknown and must be understood")
        offset += length
    if (signature_at is None or signature_at != signed_length or offset != len(data)
            or signature_at + _SIGNATURE_OBJECT_BYTES != len(data)):
        raise CertificateError("the signature must be the last object and close the signed part")
    for tag in (Tag.BASIC, Tag.KEY, Tag.MANUFACTURER, Tag.SIGNATURE):
        if tag not in found:
            raise CertificateError(f"certificate lacks its {tag.name} object")
    basic = found[Tag.BASIC]
    if len(basic) != 80:
        raise CertificateError("BASIC object has the wrong size")
    level, _, ctype = _u32s(basic, 16, 3)
    (expiration,) = _u32s(basic, 60, 1)
    keys, key_payload = [], found[Tag.KEY]
    (count,) = _u32s(key_payload, 0, 1)
    pos = 4
    for _ in range(count):
        ktype, bits, _kflags = struct.unpack_from(">HHI", key_payload, pos)
        if ktype != 1 or bits != 512:
            raise CertificateError("only ECC-256 keys are supported")
        key = key_payload[pos + 8:pos + 72]
        (n_usages,) = _u32s(key_payload, pos + 72, 1)
        keys.append((key, _u32s(key_payload, pos + 76, n_usages)))
        pos += 76 + 4 * n_usages
    if pos != len(key_payload) or not keys:
        raise CertificateError("KEY object has the wrong size")
    features: tuple[int, ...] = ()
    if Tag.FEATURE in found:
        (n_features,) = _u32s(found[Tag.FEATURE], 0, 1)
        features = _u32s(found[Tag.FEATURE], 4, n_features)
    manufacturer, model_name, model_number = _strings(found[Tag.MANUFACTURER], 4, 3)
    sig = found[Tag.SIGNATURE]
    sig_type, sig_size = struct.unpack_from(">HH", sig)
    (key_bits,) = _u32s(sig, 4 + sig_size, 1)
    if sig_type != 1 or sig_size != 64 or key_bits != 512:
        raise CertificateError("SIGNATURE object is not ECDSA P-256")
    if level not in SECURITY_LEVELS:
        raise CertificateError(f"certificate security level {level} is not one of {SECURITY_LEVELS}")
    try:
        cert_type = CertType(ctype)
    except ValueError as exc:
        raise CertificateError(f"certificate type {ctype} is not DEVICE or ISSUER") from exc
    return Certificate(cert_type, basic[:16], level, expiration, tuple(keys), features, manufacturer, model_name,
                       model_number, sig[8 + sig_size:], data[:signed_length], sig[4:4 + sig_size], basic[28:60])


def decode_chain(data: bytes) -> list[Certificate]:
    if len(data) > MAX_CHAIN_BYTES or len(data) < 20 or data[:4] != CHAIN_MAGIC:
        raise CertificateError("not a BCert certificate chain (CHAI)")
    version, total, _flags, count = struct.unpack_from(">IIII", data, 4)
    if version != VERSION or total != len(data) or not 1 <= count <= 6:
        raise CertificateError("certificate chain header is invalid")
    offset, certs = 20, []
    for _ in range(count):
        if offset + 12 > len(data) or data[offset:offset + 4] != CERT_MAGIC:
            raise CertificateError("certificate chain is truncated")
        (length,) = struct.unpack_from(">I", data, offset + 8)
        certs.append(decode_certificate(data[offset:offset + length]))
        offset += length
    if offset != len(data):
        raise CertificateError("trailing bytes after the certificate chain")
    return certs


def verify_chain(data: bytes, root_public_key: bytes, *, now: int) -> ChainInfo:
    """Verify DEVICE <- ISSUER (model) <- our root; ``now=0`` skips expiry dates."""
    certs = decode_chain(data)
    if [c.cert_type for c in certs] != [CertType.DEVICE, CertType.ISSUER]:
        raise CertificateError("the chain must be DEVICE, then its model's ISSUER certificate")
    device, model = certs
    if not crypto.constant_time_equal(model.issuer_key, xy(root_public_key)):
        raise CertificateError("the chain does not end at the trusted root")
    if not any(crypto.constant_time_equal(device.issuer_key, key) for key, _ in model.keys):
        raise CertificateError("the device certificate is not signed by its model's key")
    for index, cert in enumerate(certs):
        try:
            ecc.ecdsa_verify(uncompressed(cert.issuer_key), cert.signed, cert.signature)
        except crypto.CryptoError as exc:
            raise CertificateError(f"certificate {index} ({cert.cert_type.name}) signature does not verify") from exc
        if now and cert.expiration != NO_EXPIRY and cert.expiration < now:
            raise CertificateError(f"certificate {index} ({cert.cert_type.name}) has expired")
    signing, encryption = device.key_for(KeyUsage.SIGN), device.key_for(KeyUsage.ENCRYPT_KEY)
    if signing is None or encryption is None or signing == encryption:
        raise CertificateError("the device certificate needs separate signing and encryption keys")
    if not crypto.constant_time_equal(device.key_digest, crypto.sha256(signing)):
        raise CertificateError("the BASIC key digest is not the signing key's")
    if device.model_number != model.model_number or not model.model_number.isdigit():
        raise CertificateError("the device certificate's system id differs from its model's")
    if device.security_level > model.security_level:
        raise CertificateError("a certificate claims a higher security level than its issuer")
    expiries = [c.expiration for c in certs if c.expiration != NO_EXPIRY]
    return ChainInfo(
        serial=device.cert_id, signing_key=uncompressed(signing), encryption_key=uncompressed(encryption),
        system_id=int(model.model_number), security_level=device.security_level, model=model.model_name,
        not_before=0, not_after=min(expiries, default=0),
    )
