"""Widevine-style DRM certificates: issue and verify ``SignedDrmCertificate`` chains.

A chain is a ``SignedDrmCertificate`` whose ``signer`` field nests the issuer's
signed certificate, ending at a root. Each certificate is signed RSA-PSS/SHA-1
by its issuer's key. Sans-I/O: no files, no clock reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from license_server import crypto
from license_server.protocols.widevine import license_protocol_pb2 as pb

CertType = pb.DrmCertificate.Type
MAX_CHAIN_DEPTH = 4


class CertificateError(Exception):
    """The chain does not parse, does not verify, or does not end at the root."""


@dataclass(frozen=True)
class CertificateInfo:
    """The leaf of a verified chain and what its issuers vouch for."""

    type: int
    serial_number: bytes
    public_key: bytes
    system_id: int
    creation_time: int
    expiration_time: int  # earliest expiry in the chain; 0 = none
    provider_id: str
    issuer_serials: tuple[bytes, ...]


def issue_certificate(
    *,
    cert_type: pb.DrmCertificate.Type.ValueType,
    public_key: bytes,
    serial_number: bytes,
    issuer_key_pem: bytes | None,
    issuer: pb.SignedDrmCertificate | None,
    system_id: int = 0,
    created: int = 0,
    expires: int = 0,
    provider_id: str = "",
) -> pb.SignedDrmCertificate:
    """Sign a new certificate; with no issuer it is self-signed (a root) by ``issuer_key_pem``."""
    cert = pb.DrmCertificate(
        type=cert_type,
        serial_number=serial_number,
        creation_time_seconds=created,
        public_key=public_key,
    )
    if system_id:
        cert.system_id = system_id
    if expires:
        cert.expiration_time_seconds = expires
    if provider_id:
        cert.provider_id = provider_id
    body = cert.SerializeToString()
    if issuer_key_pem is None:
        raise ValueError("a certificate needs a signing key")
    signed = pb.SignedDrmCertificate(drm_certificate=body, signature=crypto.rsa_pss_sign(issuer_key_pem, body))
    if issuer is not None:
        signed.signer.CopyFrom(issuer)
    return signed


def verify_chain(chain_bytes: bytes, root_public_key: bytes, *, now: int) -> CertificateInfo:
    """Verify every link up to the trusted root and return the leaf.

    The leaf carries its model's system id, as real device certificates do; a
    leaf without one (made by an older emulator) inherits it from the nearest
    issuer that carries one (the device-model intermediate). A leaf whose
    system id differs from its issuer's is refused.
    """
    try:
        signed = pb.SignedDrmCertificate.FromString(chain_bytes)
    except DecodeError as exc:
        raise CertificateError("certificate chain does not parse") from exc
    links: list[tuple[pb.SignedDrmCertificate, pb.DrmCertificate]] = []
    node = signed
    while True:
        if len(links) >= MAX_CHAIN_DEPTH:
            raise CertificateError("certificate chain too deep")
        try:
            cert = pb.DrmCertificate.FromString(node.drm_certificate)
        except DecodeError as exc:
            raise CertificateError("certificate does not parse") from exc
        links.append((node, cert))
        if not node.HasField("signer"):
            break
        node = node.signer
    root_signed, root_cert = links[-1]
    if root_cert.type != CertType.ROOT or not crypto.constant_time_equal(root_cert.public_key, root_public_key):
        raise CertificateError("chain does not end at the trusted root")
    for index, (signed_node, cert) in enumerate(links):
        issuer_key = links[index + 1][1].public_key if index + 1 < len(links) else root_public_key
        try:
            crypto.rsa_pss_verify(issuer_key, signed_node.drm_certificate, signed_node.signature)
        except crypto.CryptoError as exc:
            raise CertificateError(f"certificate {index} signature does not verify") from exc
        if cert.expiration_time_seconds and cert.expiration_time_seconds < now:
            raise CertificateError(f"certificate {index} expired")
    leaf = links[0][1]
    expirations = [c.expiration_time_seconds for _, c in links if c.expiration_time_seconds]
    system_id = next((c.system_id for _, c in links if c.system_id), 0)
    issuer_system_id = next((c.system_id for _, c in links[1:] if c.system_id), 0)
    if leaf.system_id and issuer_system_id and leaf.system_id != issuer_system_id:
        raise CertificateError(f"leaf system id {leaf.system_id} differs from its issuer's ({issuer_system_id})")
    return CertificateInfo(
        type=leaf.type,
        serial_number=leaf.serial_number,
        public_key=leaf.public_key,
        system_id=system_id,
        creation_time=leaf.creation_time_seconds,
        expiration_time=min(expirations, default=0),
        provider_id=leaf.provider_id,
        issuer_serials=tuple(c.serial_number for _, c in links[1:]),
    )
