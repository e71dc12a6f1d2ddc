"""Secure invalidation: a device reports that it destroyed persistent licenses.

The report rides in a signed challenge, so the device is attested exactly as
for a license request; only licenses that this server issued *to that device*
(same dialect, persistent, same content) are marked released. Anything else is
reported back as not found, without saying whether it exists. Re-reporting a
released license is acknowledged again (idempotent).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from license_server.core import attestation
from license_server.core.attestation import TrustAnchor
from license_server.core.model import LicenseChallenge, LicenseKind, VerifiedDevice
from license_server.core.service import LicenseService
from license_server.errors import DrmError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Invalidation:
    device: VerifiedDevice
    released: tuple[str, ...]
    not_found: tuple[str, ...]


def invalidate(service: LicenseService, challenge: LicenseChallenge, *, trust: TrustAnchor,
               license_ids: tuple[str, ...], content_id: str, reason: str) -> Invalidation:
    """Attest the reporting device, then mark its reported licenses released."""
    now = service.clock.now()
    device: VerifiedDevice | None = None
    try:
        device = attestation.verify(challenge, trust=trust, rules=service.rules,
                                    revocations=service.revocations.current(), now=now)
        released: list[str] = []
        not_found: list[str] = []
        for license_id in dict.fromkeys(license_ids):
            record = service.store.license(license_id)
            if (record is None or record.system != challenge.system or record.device_id != device.device_id
                    or record.kind != LicenseKind.PERSISTENT.value or record.content_id != content_id):
                not_found.append(license_id)
                continue
            service.store.mark_released(license_id, now=now, system=challenge.system, reason=reason)
            released.append(license_id)
    except DrmError as error:
        service.refused(error, challenge, device_id=device.device_id if device else None, now=now)
        raise
    log.info("secure invalidation from %s: released %s, not found %s", device.device_id,
             ",".join(released) or "-", ",".join(not_found) or "-")
    return Invalidation(device, tuple(released), tuple(not_found))
