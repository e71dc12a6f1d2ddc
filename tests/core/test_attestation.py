"""core/attestation.py on its own: a fake trust anchor, fixed checks in a fixed order."""

from __future__ import annotations

from dataclasses import replace

import pytest

from license_server.core import attestation
from license_server.core.attestation import (
    AttestationRules,
    CertifiedKey,
    GenuineApp,
    ModelInfo,
    Revocations,
    attestation_nonce,
)
from license_server.core.model import (
    DeviceClaims,
    Evidence,
    Hdcp,
    LicenseChallenge,
    LicenseKind,
    PlatformVerification,
    RequestKind,
    SecurityLevel,
)
from license_server.errors import DrmError, ErrorCode

NOW = 1_800_000_000
REQUEST_ID = b"\x01" * 16
APP = GenuineApp("com.example.player", b"\xaa" * 32)
RULES = AttestationRules(genuine_apps=(APP,), models={4464: ModelInfo("phone", 4464, SecurityLevel.L1),
                                                      4465: ModelInfo("laptop", 4465, SecurityLevel.L3)})


class FakeTrust:
    """Chains are ``system_id:device_id``; a signature is valid when it equals b"ok"."""

    def verify_chain(self, chain: bytes, *, now: int) -> CertifiedKey:
        try:
            system_id, device_id = chain.decode().split(":")
            return CertifiedKey(device_id, int(system_id), b"pub-" + device_id.encode())
        except ValueError:
            raise DrmError(ErrorCode.CERTIFICATE_INVALID, "bad chain") from None

    def verify_signature(self, public_key: bytes, payload: bytes, signature: bytes) -> None:
        if signature != b"ok":
            raise DrmError(ErrorCode.SIGNATURE_INVALID, "bad signature")


def evidence(**changes: object) -> Evidence:
    base = Evidence(verified_boot="VERIFIED", bootloader_locked=True, root_indicators=(), app_package=APP.package,
                    app_signing_digest=APP.signing_digest, app_recognized=True, nonce=attestation_nonce(REQUEST_ID),
                    timestamp=NOW, os_patch_level=202601, from_tee=True)
    return replace(base, **changes)


def challenge(chain: bytes = b"4464:d1", *, signature: bytes = b"ok", time: int = NOW,
              proof: Evidence | None = None, no_evidence: bool = False) -> LicenseChallenge:
    claims = DeviceClaims(chain, b"payload", signature, None if no_evidence else (proof or evidence()), Hdcp.V2_2)
    return LicenseChallenge("widevine", RequestKind.NEW, LicenseKind.TEMPORARY, "movie", (), REQUEST_ID, time, claims)


def verify(request: LicenseChallenge, rules: AttestationRules = RULES, revoked: Revocations = Revocations()):
    return attestation.verify(request, trust=FakeTrust(), rules=rules, revocations=revoked, now=NOW)


def refused(request: LicenseChallenge, **kwargs: object) -> ErrorCode:
    with pytest.raises(DrmError) as caught:
        verify(request, **kwargs)  # type: ignore[arg-type]
    return caught.value.code


def test_a_genuine_tee_device_is_hardware_verified_at_its_model_level():
    device = verify(challenge())
    assert (device.device_id, device.system_id, device.model) == ("d1", 4464, "phone")
    assert device.security_level is SecurityLevel.L1 and device.verification is PlatformVerification.HARDWARE_VERIFIED
    assert device.public_key == b"pub-d1" and device.max_hdcp is Hdcp.V2_2


def test_evidence_not_from_the_tee_downgrades_an_l1_model_to_software():
    device = verify(challenge(proof=evidence(from_tee=False)))
    assert device.security_level is SecurityLevel.L3 and device.verification is PlatformVerification.SOFTWARE_VERIFIED


def test_the_level_comes_from_the_model_registry():
    assert verify(challenge(b"4465:d2")).security_level is SecurityLevel.L3


@pytest.mark.parametrize("request_, code", [
    (challenge(b"garbage"), ErrorCode.CERTIFICATE_INVALID),
    (challenge(b"9999:d1"), ErrorCode.CERTIFICATE_INVALID),
    (challenge(signature=b"forged"), ErrorCode.SIGNATURE_INVALID),
    (challenge(time=NOW - 301), ErrorCode.REPLAYED_CHALLENGE),
    (challenge(no_evidence=True), ErrorCode.ATTESTATION_INVALID),
    (challenge(proof=evidence(nonce=b"\x00" * 16)), ErrorCode.ATTESTATION_INVALID),
    (challenge(proof=evidence(timestamp=NOW - 1000)), ErrorCode.ATTESTATION_INVALID),
    (challenge(proof=evidence(root_indicators=("su",))), ErrorCode.DEVICE_ROOTED),
    (challenge(proof=evidence(verified_boot="FAILED")), ErrorCode.DEVICE_ROOTED),
    (challenge(proof=evidence(bootloader_locked=False)), ErrorCode.BOOTLOADER_UNLOCKED),
    (challenge(proof=evidence(app_signing_digest=b"\xbb" * 32)), ErrorCode.APP_NOT_GENUINE),
    (challenge(proof=evidence(app_recognized=False)), ErrorCode.APP_NOT_GENUINE),
])
def test_every_refusal_has_its_code(request_: LicenseChallenge, code: ErrorCode):
    assert refused(request_) is code


def test_checks_run_in_order_so_one_device_always_gets_the_same_code():
    # a forged signature from a rooted device: the signature check comes first
    assert refused(challenge(signature=b"forged", proof=evidence(root_indicators=("su",)))) \
        is ErrorCode.SIGNATURE_INVALID


def test_revocations_of_the_device_or_its_model():
    assert refused(challenge(), revoked=Revocations(devices=frozenset({"d1"}))) is ErrorCode.DEVICE_REVOKED
    assert refused(challenge(), revoked=Revocations(system_ids=frozenset({4464}))) is ErrorCode.DEVICE_REVOKED
    with pytest.raises(DrmError) as caught:
        attestation.check_key_ids((b"\x05" * 16,), Revocations(key_ids=frozenset({b"\x05" * 16})))
    assert caught.value.code is ErrorCode.KEY_REVOKED


def test_negative_testing_mode_serves_compromised_devices_as_tampered_software():
    rules = replace(RULES, allow_compromised=True)
    device = verify(challenge(proof=evidence(root_indicators=("su",))), rules=rules)
    assert device.verification is PlatformVerification.TAMPERED and device.security_level is SecurityLevel.L3


def test_the_nonce_binds_evidence_to_one_request_id():
    assert attestation_nonce(b"a") != attestation_nonce(b"b") and len(attestation_nonce(b"a")) == 16
    from license_server.protocols.common import attestation_nonce as shared

    assert shared is attestation_nonce
