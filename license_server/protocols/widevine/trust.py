"""The Widevine-style trust anchor: certificate chains to the emulated root, RSA-PSS."""

from __future__ import annotations

from functools import lru_cache

from license_server import crypto
from license_server.core.attestation import CertifiedKey
from license_server.errors import DrmError, ErrorCode
from license_server.protocols.widevine.certificates import CertificateError, CertificateInfo, CertType, verify_chain


class WidevineTrust:
    """Verifies device certificate chains and request signatures.

    Verified chains are cached by their bytes (expiry is re-checked every time),
    so a busy server pays for RSA verification of a chain once.
    """

    def __init__(self, root_public_key: bytes) -> None:
        self._root = root_public_key
        self._verify = lru_cache(maxsize=8192)(self._verify_uncached)

    def _verify_uncached(self, chain: bytes) -> CertificateInfo:
        return verify_chain(chain, self._root, now=0)

    def verify_chain(self, chain: bytes, *, now: int) -> CertifiedKey:
        try:
            info = self._verify(chain)
        except CertificateError as exc:
            raise DrmError(ErrorCode.CERTIFICATE_INVALID, str(exc)) from exc
        if info.type != CertType.DEVICE:
            raise DrmError(ErrorCode.CERTIFICATE_INVALID, "the leaf certificate is not a DEVICE certificate")
        if info.expiration_time and info.expiration_time < now:
            raise DrmError(ErrorCode.CERTIFICATE_INVALID, "the device certificate has expired")
        return CertifiedKey(device_id=info.serial_number.hex(), system_id=info.system_id, public_key=info.public_key)

    def verify_signature(self, public_key: bytes, payload: bytes, signature: bytes) -> None:
        try:
            crypto.rsa_pss_verify(public_key, payload, signature)
        except crypto.CryptoError as exc:
            raise DrmError(ErrorCode.SIGNATURE_INVALID, "the request signature does not verify") from exc
