"""Device attestation: from claims in a challenge to a :class:`VerifiedDevice`.

Pure: the dialect's trust anchor (certificate chain format and signature
scheme), the model registry, the revocation list and ``now`` are arguments.
Checks run in a fixed order so the same device always gets the same code:

1. certificate chain to the emulated root            CERTIFICATE_INVALID
2. model known for the chain's system id             CERTIFICATE_INVALID
3. revocation of the device or its system id         DEVICE_REVOKED
4. request signature by the certified key            SIGNATURE_INVALID
5. request time inside the freshness window          REPLAYED_CHALLENGE
6. evidence present, bound to this request, fresh    ATTESTATION_INVALID
   (absent: see below)                               ATTESTATION_REQUIRED
7. root indicators / verified boot                   DEVICE_ROOTED
8. bootloader lock                                   BOOTLOADER_UNLOCKED
9. genuine, recognized app                           APP_NOT_GENUINE

The security level comes from the model registry (the certificate), never
from what the device says about itself; evidence that does not come from the
TEE downgrades an L1 model to software-level trust.

A challenge with no evidence at all, from a dialect whose real clients cannot
carry ours (``AttestationRules.unattested_systems``, e.g. stock Widevine CDMs or PlayReady clients),
is served as an *unverified platform*: L3 trust whatever the certificate says
(software-level keys only; :mod:`policy` never gives it a persistent license).
A rooted device can always omit its evidence, so this is exactly what a rooted
device may get. ``require_attestation`` refuses it instead (ATTESTATION_REQUIRED).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

from license_server.core.freshness import skew_message
from license_server.core.model import (
    DeviceClaims,
    LicenseChallenge,
    PlatformVerification,
    SecurityLevel,
    VerifiedDevice,
)
from license_server.errors import DrmError, ErrorCode

FRESHNESS_WINDOW = 300  # seconds either side of the server clock
ATTESTATION_NONCE_LABEL = b"drm-license-emulator attestation nonce v1|"


def attestation_nonce(request_id: bytes) -> bytes:
    """The nonce that binds attestation evidence to exactly one challenge.

    Evidence whose nonce is not this value for the challenge's request id was
    produced for another request and is refused as replayed. Devices compute it
    the same way (they import it from here or from :mod:`license_server.protocols.common`).
    """
    return hashlib.sha256(ATTESTATION_NONCE_LABEL + request_id).digest()[:16]


@dataclass(frozen=True)
class CertifiedKey:
    """What a verified certificate chain vouches for."""

    device_id: str
    system_id: int
    public_key: bytes


class TrustAnchor(Protocol):
    """A dialect's certificate and signature scheme, bound to its root."""

    def verify_chain(self, chain: bytes, *, now: int) -> CertifiedKey:
        """Return the leaf's identity or raise ``DrmError(CERTIFICATE_INVALID)``."""

    def verify_signature(self, public_key: bytes, payload: bytes, signature: bytes) -> None:
        """Raise ``DrmError(SIGNATURE_INVALID)`` unless the signature verifies."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    system_id: int
    security_level: SecurityLevel


@dataclass(frozen=True)
class Revocations:
    devices: frozenset[str] = frozenset()
    system_ids: frozenset[int] = frozenset()
    key_ids: frozenset[bytes] = frozenset()  # revoked content keys (KIDs), refused with KEY_REVOKED


def check_key_ids(key_ids: tuple[bytes, ...], revocations: Revocations) -> None:
    """Refuse with ``KEY_REVOKED`` if any of ``key_ids`` is revoked (a compromised content key
    must never be delivered again, whatever the device or dialect)."""
    revoked = [kid.hex() for kid in key_ids if kid in revocations.key_ids]
    if revoked:
        raise DrmError(ErrorCode.KEY_REVOKED, f"content key {', '.join(revoked)} is revoked")


@dataclass(frozen=True)
class GenuineApp:
    package: str
    signing_digest: bytes


@dataclass(frozen=True)
class AttestationRules:
    """What the server accepts. ``allow_compromised`` exists for negative testing only."""

    genuine_apps: tuple[GenuineApp, ...] = ()
    allow_compromised: bool = False
    freshness_window: int = FRESHNESS_WINDOW
    models: dict[int, ModelInfo] = field(default_factory=dict)
    require_attestation: bool = False  # serve --require-attestation: no evidence, no license
    unattested_systems: frozenset[str] = frozenset()  # dialects served as UNVERIFIED without evidence


def verify(
    challenge: LicenseChallenge,
    *,
    trust: TrustAnchor,
    rules: AttestationRules,
    revocations: Revocations,
    now: int,
) -> VerifiedDevice:
    claims = challenge.device
    if claims is None:
        raise DrmError(ErrorCode.MALFORMED_CHALLENGE, "the challenge carries no device identity")
    certified = trust.verify_chain(claims.certificate_chain, now=now)
    model = rules.models.get(certified.system_id)
    if model is None:
        raise DrmError(ErrorCode.CERTIFICATE_INVALID, f"unknown device model (system id {certified.system_id})")
    if certified.device_id in revocations.devices:
        raise DrmError(ErrorCode.DEVICE_REVOKED, f"device {certified.device_id} is revoked")
    if certified.system_id in revocations.system_ids:
        raise DrmError(ErrorCode.DEVICE_REVOKED, f"device model {model.name} (system id {model.system_id}) is revoked")
    trust.verify_signature(certified.public_key, claims.signed_payload, claims.signature)
    if abs(now - challenge.request_time) > rules.freshness_window:
        raise DrmError(ErrorCode.REPLAYED_CHALLENGE,
                       skew_message("challenge time", challenge.request_time, now, rules.freshness_window))
    if claims.evidence is None and challenge.system in rules.unattested_systems:
        return _unattested(challenge, certified, model, claims, rules)
    compromise = _check_evidence(challenge, claims, rules)
    level = model.security_level
    verification = PlatformVerification.HARDWARE_VERIFIED
    if level is SecurityLevel.L1 and not (claims.evidence and claims.evidence.from_tee):
        level = SecurityLevel.L3
    if level is SecurityLevel.L3:
        verification = PlatformVerification.SOFTWARE_VERIFIED
    if compromise is not None:
        if not rules.allow_compromised:
            raise compromise
        level, verification = SecurityLevel.L3, PlatformVerification.TAMPERED
    return VerifiedDevice(
        device_id=certified.device_id,
        system_id=certified.system_id,
        model=model.name,
        security_level=level,
        verification=verification,
        max_hdcp=claims.max_hdcp,
        public_key=certified.public_key,
    )


def _unattested(challenge: LicenseChallenge, certified: CertifiedKey, model: ModelInfo, claims: DeviceClaims,
                rules: AttestationRules) -> VerifiedDevice:
    """A valid chain and signature without evidence: an unverified, software-only platform."""
    if rules.require_attestation:
        raise DrmError(ErrorCode.ATTESTATION_REQUIRED,
                       "this server requires attestation evidence and the challenge carries none")
    return VerifiedDevice(
        device_id=certified.device_id,
        system_id=certified.system_id,
        model=model.name,
        security_level=SecurityLevel.L3,
        verification=PlatformVerification.UNVERIFIED,
        max_hdcp=claims.max_hdcp,
        public_key=certified.public_key,
    )


def _check_evidence(challenge: LicenseChallenge, claims: DeviceClaims, rules: AttestationRules) -> DrmError | None:
    """Raise for evidence that cannot be trusted; return (not raise) a compromise finding."""
    evidence = claims.evidence
    if evidence is None:
        if rules.require_attestation:
            raise DrmError(ErrorCode.ATTESTATION_REQUIRED, "the challenge carries no attestation evidence")
        raise DrmError(ErrorCode.ATTESTATION_INVALID, "the challenge carries no attestation evidence")
    if challenge.request_id is None or evidence.nonce != attestation_nonce(challenge.request_id):
        raise DrmError(ErrorCode.ATTESTATION_INVALID, "attestation evidence was produced for another request")
    if abs(evidence.timestamp - challenge.request_time) > rules.freshness_window:
        raise DrmError(ErrorCode.ATTESTATION_INVALID, "attestation evidence is stale")
    if evidence.root_indicators or evidence.verified_boot in ("UNVERIFIED", "FAILED"):
        found = ", ".join(evidence.root_indicators) or f"verified boot {evidence.verified_boot}"
        return DrmError(ErrorCode.DEVICE_ROOTED, f"the device is rooted or its OS is modified ({found})")
    if not evidence.bootloader_locked or evidence.verified_boot == "SELF_SIGNED":
        return DrmError(ErrorCode.BOOTLOADER_UNLOCKED, "the device bootloader is unlocked")
    genuine = any(
        app.package == evidence.app_package and app.signing_digest == evidence.app_signing_digest
        for app in rules.genuine_apps
    )
    if not genuine or not evidence.app_recognized:
        return DrmError(ErrorCode.APP_NOT_GENUINE,
                        f"app {evidence.app_package or '?'} is not a genuine, recognized build")
    return None
