"""The PlayReady-style license response: from a neutral :class:`Grant` to SOAP bytes.

:func:`build_license_response` is the one entry point the handler calls: it
applies the test server's ``cfg=`` key and security-level rules, encrypts each
content key to the device (ECIES, with the license's integrity key), encodes
the XMR license and wraps it in the ``AcquireLicenseResponse`` envelope.
"""

from __future__ import annotations

from dataclasses import replace

from license_server import crypto
from license_server.core.model import Grant, LicenseKind, Robustness, SecurityLevel
from license_server.crypto import ecc
from license_server.errors import DrmError, ErrorCode, malformed
from license_server.protocols.playready import SL150, SL2000, SL3000, soap, wrmheader, xmr
from license_server.protocols.playready.certificates import ChainInfo
from license_server.protocols.playready.testcfg import TestServerCfg


def effective_level(grant_level: SecurityLevel, certified: int) -> int:
    """The certificate's level, capped at SL2000 when attestation downgraded the device to software."""
    return certified if grant_level is SecurityLevel.L1 else min(certified, SL2000)


def _header_cipher(header_key: wrmheader.HeaderKey | None) -> str:
    """The cipher the WRMHEADER names for a key (its ALGID), AES-CTR by default."""
    return header_key.algid if header_key is not None and header_key.algid else "AESCTR"


def build_license_response(grant: Grant, parsed: soap.ParsedChallenge, cfg: TestServerCfg, chain: ChainInfo) -> bytes:
    """The ``AcquireLicenseResponse`` for ``grant`` to the device of ``chain``.

    Refuses ``SECURITY_LEVEL_TOO_LOW`` when the device's effective level is under the
    license's minimum (``cfg`` ``securitylevel``, else SL3000 for hardware-robust keys,
    else SL150), and a malformed challenge when a WRMHEADER checksum does not match.
    """
    device = grant.device
    if device is None:
        raise DrmError(ErrorCode.UNSUPPORTED_REQUEST, "a PlayReady-style license needs an attested device")
    keys = grant.keys
    if cfg.content_key is not None and cfg.kid is not None:
        keys = (replace(keys[0], kid=cfg.kid, key=cfg.content_key),)
    device_level = effective_level(device.security_level, chain.security_level)
    needs_hardware = any(k.robustness >= Robustness.HW_SECURE_CRYPTO for k in keys)
    min_level = cfg.min_security_level or (SL3000 if needs_hardware else SL150)
    if device_level < min_level:
        raise DrmError(ErrorCode.SECURITY_LEVEL_TOO_LOW,
                       f"the license needs security level {min_level}; this device is SL{device_level}")
    by_kid = {k.kid: k for k in parsed.header.keys}
    for key in keys:
        header_key = by_kid.get(key.kid)
        if header_key is not None and cfg.content_key is None and not wrmheader.checksum_matches(header_key, key.key):
            raise malformed(f"the WRMHEADER CHECKSUM of KID {key.kid.hex()} does not match its content key")
    integrity_key = crypto.random_bytes(16)
    rights_id = bytes.fromhex(grant.license_id)
    content_keys = tuple(
        xmr.ContentKey(
            kid=k.kid,
            cipher=cfg.cipher or _header_cipher(by_kid.get(k.kid)),
            track=k.track.value, robustness=int(k.robustness), hdcp=int(k.hdcp),
            encrypted_key=ecc.ecies_encrypt(device.public_key, integrity_key + k.key,
                                            xmr.key_context(rights_id, k.kid)),
        )
        for k in keys
    )
    policy = grant.policy
    persistent = grant.kind is LicenseKind.PERSISTENT
    lic = xmr.XmrLicense(
        rights_id=rights_id, issue_date=grant.issued_at, persistent=persistent, min_security_level=min_level,
        keys=content_keys, device_key_digest=crypto.sha256(device.public_key),
        begin=cfg.begin_date or 0, end=policy.deadline(grant.issued_at) or 0,
        expire_after_first_play=policy.playback_duration, real_time_expiration=cfg.real_time,
        removal_date=cfg.removal_date or 0, nonce=None if persistent else parsed.license_nonce,
        play_right=cfg.play_right and policy.can_play, platform_verification=device.verification.value,
        output_protection=cfg.output_protection,
    )
    data = xmr.encode(lic, integrity_key)
    return soap.build_license_response(
        [data], response_id=crypto.random_bytes(16),
        license_nonce=parsed.license_nonce if persistent else None,
        binding=soap.nonce_binding(integrity_key, parsed.license_nonce, data) if persistent else None,
        transaction_id=rights_id if persistent else None,
    )
