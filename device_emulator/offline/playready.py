"""PlayReady-style offline adapter: persistent XMR licenses and Secure Delete.

A stored license is the XMR license itself (its keys encrypted to this
device's ECC key); loading it checks the binding and the AES-CMAC signature in
the ECC key holder. The storage window ends at the license's end date (or its
removal date, whichever comes first), the begin date is a not-before, and the
expire-after-first-play object is the playback window. On removal the device
keeps the facts of the destruction (license id, KIDs, time); ``sync`` sends
them as a Secure Delete report signed with the device key and purges the
record once the server's answer matches the report. There is no renewal.
"""

from __future__ import annotations

import json
from typing import Any

from license_server.protocols.playready import SYSTEM
from device_emulator.acquire_playready import secure_delete
from device_emulator.cdm.playready import PlayReadyCdm
from device_emulator.cdm.widevine import CdmError
from device_emulator.device import Device
from device_emulator.license_store import LicenseStore, StoredLicense
from device_emulator.offline import Acknowledgement, Destruction, OfflineLicense, no_renewal


class PlayReadyAdapter:
    system = SYSTEM
    renewable = False

    def load(self, device: Device, lic: StoredLicense) -> OfflineLicense:
        cdm = PlayReadyCdm(device)
        loaded = cdm.load_stored(lic)
        if loaded.license_id != lic.license_id or not loaded.license.persistent:
            cdm.close(loaded)
            raise CdmError("LICENSE_MISMATCH", "the stored XMR license is not the recorded persistent license")
        return OfflineLicense(SYSTEM, loaded.handle, cdm.identity.holder, loaded.keys, loaded.policy(),
                              loaded.license_start, not_before=loaded.not_before, native=loaded)

    def destruction(self, device: Device, lic: StoredLicense, loaded: OfflineLicense | None,
                    now: int) -> Destruction:
        # Secure Delete is signed with the device's ECC key when it is sent: no license key needed.
        facts = {"license_id": lic.license_id, "kids": [k["kid"] for k in lic.keys], "deleted_at": now}
        return Destruction(json.dumps(facts, sort_keys=True).encode())

    def report_destruction(self, device: Device, record: dict[str, Any], *, server: str, url: str,
                           headers: dict[str, str] | None) -> Acknowledgement:
        try:
            facts = json.loads(record["release_body"])
            kids = tuple(bytes.fromhex(k) for k in facts["kids"])
            deleted_at = int(facts["deleted_at"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CdmError("MALFORMED_RECORD", "the Secure Delete record does not parse") from exc
        answer = secure_delete(device, server=server, license_id=record["license_id"], kids=kids,
                               deleted_at=deleted_at, url=url, headers=headers)
        return Acknowledgement(answer.status in ("released", "already-released"), answer.status)

    def renew(self, device: Device, store: LicenseStore, lic: StoredLicense, loaded: OfflineLicense, *,
              url: str, headers: dict[str, str] | None) -> dict[str, Any]:
        raise no_renewal(SYSTEM)
