"""The PlayReady-style trust anchor: ECC chains to the emulated root, ECDSA-SHA256.

Implements :class:`license_server.core.attestation.TrustAnchor`. Verified
chains are cached by their bytes (validity dates are re-checked every time).
"""

from __future__ import annotations

from functools import lru_cache

from license_server import crypto
from license_server.core.attestation import CertifiedKey
from license_server.core.model import SecurityLevel
from license_server.crypto import ecc
from license_server.errors import DrmError, ErrorCode
from license_server.protocols.playready import SL3000
from license_server.protocols.playready.certificates import CertificateError, ChainInfo, verify_chain


def neutral_level(security_level: int) -> SecurityLevel:
    """SL3000 is hardware (L1); anything lower is software (L3) for the neutral policy."""
    return SecurityLevel.L1 if security_level >= SL3000 else SecurityLevel.L3


class PlayReadyTrust:
    def __init__(self, root_public_key: bytes) -> None:
        self._root = root_public_key
        self._verify = lru_cache(maxsize=8192)(self._verify_uncached)

    def _verify_uncached(self, chain: bytes) -> ChainInfo:
        return verify_chain(chain, self._root, now=0)

    def chain_info(self, chain: bytes, *, now: int) -> ChainInfo:
        """Verify ``chain`` and return what it vouches for (raises CERTIFICATE_INVALID)."""
        if not self._root:
            raise DrmError(ErrorCode.CERTIFICATE_INVALID, "this server has no PlayReady root (run `keys init`)")
        try:
            info = self._verify(chain)
        except CertificateError as exc:
            raise DrmError(ErrorCode.CERTIFICATE_INVALID, str(exc)) from exc
        if now and (info.not_before > now or (info.not_after and info.not_after < now)):
            raise DrmError(ErrorCode.CERTIFICATE_INVALID, "the device certificate is not valid now")
        return info

    def verify_chain(self, chain: bytes, *, now: int) -> CertifiedKey:
        info = self.chain_info(chain, now=now)
        return CertifiedKey(device_id=info.device_id, system_id=info.system_id, public_key=info.public_key)

    def verify_signature(self, public_key: bytes, payload: bytes, signature: bytes) -> None:
        try:
            ecc.ecdsa_verify(public_key, payload, signature)
        except crypto.CryptoError as exc:
            raise DrmError(ErrorCode.SIGNATURE_INVALID, "the challenge signature does not verify") from exc
