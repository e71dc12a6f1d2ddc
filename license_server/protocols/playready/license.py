"""The PlayReady license response from a neutral grant: :func:`build_license_response` is the one entry point.

One XMR license per content key (as PlayReady issues them), all sharing the
grant's rights id; each key and its fresh integrity key are ElGamal-encrypted
to the device certificate's encryption key, and each license is AES-CMAC
signed with its own integrity key. The response echoes the LicenseNonce and
binds it (``NonceBinding``: AES-CMAC with the first license's integrity key
over nonce | SHA-256 of the licenses) so a replayed response is refused.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from license_server import crypto
from license_server.core.model import Grant, LicenseKind, Robustness, SecurityLevel
from license_server.crypto import elgamal
from license_server.errors import DrmError, ErrorCode, malformed
from license_server.protocols.playready import (
    SL150,
    SL2000,
    SL3000,
    soap,
    wrmheader,
    xmr,
)
from license_server.protocols.playready.certificates import ChainInfo

if TYPE_CHECKING:
    from license_server.protocols.playready.challenge import ParsedChallenge
    from license_server.protocols.playready.testcfg import TestServerCfg


def effective_level(grant_level: SecurityLevel, certified: int) -> int:
    """The certificate's level, capped at SL2000 when attestation downgraded the device to software."""
    return certified if grant_level is SecurityLevel.L1 else min(certified, SL2000)


def build_license_response(grant: Grant, parsed: ParsedChallenge, cfg: TestServerCfg, chain: ChainInfo) -> bytes:
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
    rights_id = bytes.fromhex(grant.license_id)
    policy = grant.policy
    persistent = grant.kind is LicenseKind.PERSISTENT
    device_key = chain.encryption_key[-64:]
    licenses, first_integrity = [], b""
    for k in keys:
        integrity, wrapped = elgamal.encrypt_key_pair(device_key, None, k.key)
        first_integrity = first_integrity or integrity
        header_algid = by_kid[k.kid].algid if k.kid in by_kid else None
        cipher: str = cfg.cipher or header_algid or "AESCTR"
        lic = xmr.XmrLicense(
            rights_id=rights_id, issue_date=grant.issued_at, persistent=persistent, min_security_level=min_level,
            keys=(xmr.ContentKey(k.kid, cipher, k.track.value, int(k.robustness), int(k.hdcp), wrapped),),
            device_key=device_key, begin=cfg.begin_date or 0,
            end=policy.deadline(grant.issued_at) or 0,
            expire_after_first_play=policy.playback_duration, real_time_expiration=cfg.real_time,
            removal_date=cfg.removal_date or 0, play_right=cfg.play_right and policy.can_play,
            platform_verification=device.verification.value, output_protection=cfg.output_protection,
        )
        licenses.append(xmr.encode(lic, integrity))
    return soap.build_license_response(
        licenses, response_id=crypto.random_bytes(16), license_nonce=parsed.license_nonce,
        binding=soap.nonce_binding(first_integrity, parsed.license_nonce, b"".join(licenses)),
        transaction_id=rights_id if persistent else None,
    )
