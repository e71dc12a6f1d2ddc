"""The Widevine-style trust anchor: certificate chains to the emulated root, RSA-PSS."""

from __future__ import annotations

from license_server import crypto
from license_server.core.attestation import CertifiedKey
from license_server.errors import DrmError, ErrorCode
from license_server.protocols.chain_cache import ChainCache, chain_key
from license_server.protocols.widevine.certificates import CertificateError, CertificateInfo, CertType, verify_chain


class WidevineTrust:
    """Verifies device certificate chains and request signatures.

    Verified chains are cached by the SHA-256 of their bytes in a cache bounded by
    bytes (expiry is re-checked every time), so a busy server pays for RSA
    verification of a chain once. A chain enters the cache only when the request
    it came with passes :meth:`verify_signature`: a freshly verified chain waits
    in a single slot until then, so unsigned requests cannot pin memory.
    """

    def __init__(self, root_public_key: bytes, *, cache_bytes: int | None = None) -> None:
        self._root = root_public_key
        self.cache: ChainCache[CertificateInfo] = ChainCache() if cache_bytes is None else ChainCache(cache_bytes)
        self._pending: tuple[bytes, CertificateInfo] | None = None

    def verify_chain(self, chain: bytes, *, now: int) -> CertifiedKey:
        key = chain_key(chain)
        info = self.cache.get(key)
        if info is None:
            self._pending = None
            try:
                info = verify_chain(chain, self._root, now=0)
            except CertificateError as exc:
                raise DrmError(ErrorCode.CERTIFICATE_INVALID, str(exc)) from exc
            self._pending = (key, info)
        if info.type != CertType.DEVICE:
            raise DrmError(ErrorCode.CERTIFICATE_INVALID, "the leaf certificate is not a DEVICE certificate")
        if info.expiration_time and info.expiration_time < now:
            raise DrmError(ErrorCode.CERTIFICATE_INVALID, "the device certificate has expired")
        return CertifiedKey(device_id=info.serial_number.hex(), system_id=info.system_id, public_key=info.public_key)

    def verify_signature(self, public_key: bytes, payload: bytes, signature: bytes) -> None:
        pending, self._pending = self._pending, None
        try:
            crypto.rsa_pss_verify(public_key, payload, signature)
        except crypto.CryptoError as exc:
            raise DrmError(ErrorCode.SIGNATURE_INVALID, "the request signature does not verify") from exc
        if pending is not None and pending[1].public_key == public_key:
            key, info = pending
            self.cache.put(key, info, len(info.public_key) + len(info.serial_number) + len(info.provider_id)
                           + sum(len(s) for s in info.issuer_serials))
