""""What would the server do?": a challenge walked through attestation, entitlement and policy,
recording nothing.

It calls the core's pure functions (:func:`attestation.verify`,
:func:`entitlements.authorize`, :func:`policy.decide`) with the live server's
collaborators, exactly as :meth:`LicenseService.acquire` orders them, and stops
before the store: no replay record, no device row, no license, no audit entry.
Two checks need the store and are therefore not evaluated: challenge replay and
the account's or device's download caps; the answer says so.
"""

from __future__ import annotations

from typing import Any

from license_server.core.attestation import TrustAnchor
from license_server.core.entitlements import Access
from license_server.core.model import LicenseChallenge, RequestKind, VerifiedDevice
from license_server.core.policy import PolicyOverrides
from license_server.core.service import Pending
from license_server.errors import DrmError
from license_server.inspect.model import Decoded

NOT_EVALUATED = ["replay of the same challenge (needs the store)", "download caps of the account and device"]


def baseline_overrides(decoded: Decoded, now: int) -> PolicyOverrides:
    """The dialect's own policy baseline for a request without ``cfg=`` (what its handler passes)."""
    if decoded.dialect == "fairplay" and decoded.extra is not None:
        from license_server.protocols.fairplay import policy as fp_policy

        return fp_policy.overrides_for({}, license_kind=decoded.extra.challenge.license_kind,
                                       audio_only=decoded.extra.audio_only)
    if decoded.dialect == "playready":
        from license_server.protocols.playready import testcfg

        return testcfg.parse_cfg(None, now=now).overrides()
    return PolicyOverrides()


def _device(device: VerifiedDevice | None) -> dict[str, Any] | None:
    if device is None:
        return None
    return {"device_id": device.device_id, "system_id": device.system_id, "model": device.model,
            "security_level": device.security_level.value, "verification": device.verification.value,
            "max_hdcp": device.max_hdcp.name}


def what_would_happen(challenge: LicenseChallenge, service: Any, *, trust: TrustAnchor | None,
                      overrides: PolicyOverrides, now: int, access: Access | None = None) -> dict[str, Any]:
    """The grant (tracks and key ids, never key values) or the refusal code, with nothing recorded.

    ``service`` is the server's :class:`LicenseService`; only its collaborators
    (keyring, rules, revocations, rights, token keys) are read.
    """
    if challenge.kind is not RequestKind.NEW:
        return {"outcome": "not_evaluated", "code": None, "reason": f"a {challenge.kind.value} request refers to an "
                "issued license; its checks need the license's stored MAC keys", "device": None, "keys": []}
    access = access or Access()
    pending = Pending()
    try:
        grant = service.evaluate(challenge, trust=trust, overrides=overrides, access=access,
                                 entitlement=service.entitlement(access, now), rights=service.rights.current(),
                                 license_id="0" * 32, now=now, pending=pending)
    except DrmError as error:
        return {"outcome": "refusal", "code": error.code.value, "reason": error.message,
                "device": _device(pending.device), "keys": [], "not_evaluated": NOT_EVALUATED}
    return {
        "outcome": "grant", "code": None, "reason": f"a {grant.kind.value} license for {grant.content_id}",
        "device": _device(pending.device), "content_id": grant.content_id, "kind": grant.kind.value,
        "keys": [{"track": key.track.value, "kid": key.kid.hex(), "robustness": key.robustness.name,
                  "hdcp": key.hdcp.name} for key in grant.keys],
        "policy": grant.policy.as_dict(), "not_evaluated": NOT_EVALUATED,
    }
