"""The emulated PlayReady-style device certificate chain (ECC P-256).

Our own compact binary format (all integers big-endian)::

    chain  := "EPRC" | u16 format (1) | u16 count | count x ( u32 length | cert )
    cert   := body | signature (64 bytes: ECDSA-SHA256 raw r||s by the issuer)
    body   := "CERT" | u16 format (1) | u8 type | u8 reserved (0)
            | u16 security level (150, 2000, 3000) | u32 system id
            | 16 bytes serial number | u64 not before | u64 not after (0: none)
            | 65 bytes public key (uncompressed P-256 point)
            | u8 name length | name (UTF-8: model name, "root" or device label)

Types: 1 = ROOT (self-signed), 2 = MODEL (signed by the root, carries the
model's system id and security level), 3 = DEVICE (signed by its model).
A chain is leaf first: DEVICE, MODEL, ROOT. A verified chain gives the
device's serial number, public key, system id and security level; a device's
level can never exceed its model's, nor a model's the root's.
Sans-I/O: no files, no clock reads (``now`` is an argument).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from license_server import crypto
from license_server.crypto import ecc
from license_server.protocols.playready import SECURITY_LEVELS

CHAIN_MAGIC, CERT_MAGIC, FORMAT = b"EPRC", b"CERT", 1
_BODY = struct.Struct(">4sHBBHI16sQQ65sB")
MAX_CHAIN_BYTES = 8 * 1024


class CertType(IntEnum):
    ROOT = 1
    MODEL = 2
    DEVICE = 3


class CertificateError(Exception):
    """The chain does not parse, does not verify, or does not end at the root."""


@dataclass(frozen=True)
class Certificate:
    type: CertType
    security_level: int
    system_id: int
    serial: bytes
    not_before: int
    not_after: int
    public_key: bytes
    name: str
    body: bytes
    signature: bytes

    def encode(self) -> bytes:
        return self.body + self.signature


@dataclass(frozen=True)
class ChainInfo:
    """What a verified chain vouches for (the leaf and its model)."""

    serial: bytes
    public_key: bytes
    system_id: int
    security_level: int
    model: str
    not_before: int
    not_after: int  # earliest expiry in the chain; 0 = none

    @property
    def device_id(self) -> str:
        return self.serial.hex()


def issue(*, cert_type: CertType, security_level: int, system_id: int, serial: bytes, public_key: bytes,
          name: str, issuer_key_pem: bytes, not_before: int = 0, not_after: int = 0) -> Certificate:
    """Sign a certificate with ``issuer_key_pem`` (the subject's own key for a root)."""
    if security_level not in SECURITY_LEVELS:
        raise ValueError(f"security level must be one of {SECURITY_LEVELS}")
    raw_name = name.encode("utf-8")
    if len(raw_name) > 255 or len(serial) != 16 or len(public_key) != ecc.POINT_BYTES:
        raise ValueError("bad certificate field size")
    body = _BODY.pack(CERT_MAGIC, FORMAT, int(cert_type), 0, security_level, system_id, serial,
                      not_before, not_after, public_key, len(raw_name)) + raw_name
    return Certificate(cert_type, security_level, system_id, serial, not_before, not_after, public_key, name,
                       body, ecc.ecdsa_sign(issuer_key_pem, body))


def encode_chain(certificates: list[Certificate] | tuple[Certificate, ...]) -> bytes:
    out = CHAIN_MAGIC + struct.pack(">HH", FORMAT, len(certificates))
    for cert in certificates:
        data = cert.encode()
        out += struct.pack(">I", len(data)) + data
    return out


def decode_certificate(data: bytes) -> Certificate:
    if len(data) < _BODY.size + ecc.SIGNATURE_BYTES:
        raise CertificateError("certificate is truncated")
    magic, fmt, ctype, _, level, system_id, serial, nbf, naf, key, name_len = _BODY.unpack_from(data)
    end = _BODY.size + name_len
    if magic != CERT_MAGIC or fmt != FORMAT or len(data) != end + ecc.SIGNATURE_BYTES:
        raise CertificateError("certificate header or length is invalid")
    try:
        cert_type = CertType(ctype)
        name = data[_BODY.size:end].decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CertificateError("certificate type or name is invalid") from exc
    if level not in SECURITY_LEVELS:
        raise CertificateError(f"certificate security level {level} is not one of {SECURITY_LEVELS}")
    return Certificate(cert_type, level, system_id, serial, nbf, naf, key, name, data[:end], data[end:])


def decode_chain(data: bytes) -> list[Certificate]:
    if len(data) > MAX_CHAIN_BYTES or len(data) < 8 or data[:4] != CHAIN_MAGIC:
        raise CertificateError("not an emulated PlayReady certificate chain")
    fmt, count = struct.unpack_from(">HH", data, 4)
    if fmt != FORMAT or not 1 <= count <= 4:
        raise CertificateError("certificate chain format or length is invalid")
    offset, certs = 8, []
    for _ in range(count):
        if offset + 4 > len(data):
            raise CertificateError("certificate chain is truncated")
        (length,) = struct.unpack_from(">I", data, offset)
        chunk = data[offset + 4:offset + 4 + length]
        if len(chunk) != length:
            raise CertificateError("certificate chain is truncated")
        certs.append(decode_certificate(chunk))
        offset += 4 + length
    if offset != len(data):
        raise CertificateError("trailing bytes after the certificate chain")
    return certs


def verify_chain(data: bytes, root_public_key: bytes, *, now: int) -> ChainInfo:
    """Verify DEVICE <- MODEL <- ROOT up to the trusted root; ``now=0`` skips validity dates."""
    certs = decode_chain(data)
    if [c.type for c in certs] != [CertType.DEVICE, CertType.MODEL, CertType.ROOT]:
        raise CertificateError("the chain must be DEVICE, MODEL, ROOT (leaf first)")
    device, model, root = certs
    if not crypto.constant_time_equal(root.public_key, root_public_key):
        raise CertificateError("the chain does not end at the trusted root")
    for index, cert in enumerate(certs):
        issuer = certs[index + 1] if index + 1 < len(certs) else root
        try:
            ecc.ecdsa_verify(issuer.public_key, cert.body, cert.signature)
        except crypto.CryptoError as exc:
            raise CertificateError(f"certificate {index} ({cert.type.name}) signature does not verify") from exc
        if now and (cert.not_before > now or (cert.not_after and cert.not_after < now)):
            raise CertificateError(f"certificate {index} ({cert.type.name}) is not valid now")
    if device.system_id != model.system_id:
        raise CertificateError("the device certificate's system id differs from its model's")
    if device.security_level > model.security_level or model.security_level > root.security_level:
        raise CertificateError("a certificate claims a higher security level than its issuer")
    expiries = [c.not_after for c in certs if c.not_after]
    return ChainInfo(
        serial=device.serial, public_key=device.public_key, system_id=model.system_id,
        security_level=device.security_level, model=model.name, not_before=device.not_before,
        not_after=min(expiries, default=0),
    )
