"""PlayReady BCert certificates and CHAI chains, shown with their real object names (keys are public)."""

from __future__ import annotations

import struct
from typing import Any

from license_server.crypto import CryptoError, ecc
from license_server.inspect.model import Context, Decoded, NotMine
from license_server.protocols.playready import certificates
from license_server.protocols.playready.certificates import (
    CertificateError,
    CertType,
    Feature,
    KeyUsage,
)


def _name(enum: Any, value: int) -> str:
    try:
        return f"{enum(value).name} ({value})"
    except ValueError:
        return f"unknown ({value})"


def certificate_view(cert: certificates.Certificate) -> dict[str, Any]:
    return {
        "certificate_type": _name(CertType, int(cert.cert_type)), "certificate_id": cert.cert_id.hex(),
        "security_level": cert.security_level,
        "expiration": None if cert.expiration == certificates.NO_EXPIRY else cert.expiration,
        "keys": [{"type": "ECC-256", "public_key": key.hex()[:32] + "...",
                  "usages": [_name(KeyUsage, u) for u in usages]} for key, usages in cert.keys],
        "features": [_name(Feature, f) for f in cert.features],
        "manufacturer": cert.manufacturer, "model_name": cert.model_name, "model_number": cert.model_number,
        "issuer_key": cert.issuer_key.hex()[:32] + "...",
        "signature": f"ECDSA-SHA256 (P-256), {len(cert.signature)} bytes",
    }


def chain_view(data: bytes, context: Context) -> dict[str, Any]:
    """The chain's certificates and, with the server's root key, whether it verifies."""
    try:
        certs = certificates.decode_chain(data)
    except (CertificateError, ValueError, struct.error) as exc:
        return {"error": f"{len(data)} bytes; does not decode: {exc}", "certificates": []}
    view: dict[str, Any] = {"certificates": [certificate_view(c) for c in certs]}
    root = context.playready_root_public_key
    if not root:
        view["verified"] = None
        view["verification"] = "not checked: no PlayReady root key (inspect with the keys directory)"
        return view
    try:
        info = certificates.verify_chain(data, root, now=0)
    except CertificateError as exc:
        view["verified"], view["verification"] = False, str(exc)
        return view
    view["verified"], view["verification"] = True, "DEVICE <- ISSUER <- the emulated root"
    view["device_id"], view["system_id"], view["model"] = info.device_id, info.system_id, info.model
    return view


def leaf_signing_key(data: bytes) -> bytes | None:
    try:
        key = certificates.decode_chain(data)[0].key_for(KeyUsage.SIGN)
    except (CertificateError, ValueError, struct.error):
        return None
    return certificates.uncompressed(key) if key else None


def signature_verifies(chain: bytes, payload: bytes, signature: bytes) -> bool | None:
    key = leaf_signing_key(chain)
    if key is None:
        return None
    try:
        ecc.ecdsa_verify(key, payload, signature)
    except CryptoError:
        return False
    return True


def decode(data: bytes, context: Context) -> Decoded:
    """A bare CHAI chain or a single CERT."""
    if data[:4] == certificates.CHAIN_MAGIC:
        view = chain_view(data, context)
        if "error" in view:
            raise NotMine(view["error"])
        return Decoded("playready.bcert_chain", f"PlayReady BCert chain ({len(view['certificates'])} certificates)",
                       view, dialect="playready")
    if data[:4] == certificates.CERT_MAGIC:
        try:
            cert = certificates.decode_certificate(data)
        except CertificateError as exc:
            raise NotMine(str(exc)) from exc
        return Decoded("playready.bcert", f"PlayReady BCert {cert.cert_type.name} certificate",
                       certificate_view(cert), dialect="playready")
    raise NotMine("no CHAI / CERT magic")
