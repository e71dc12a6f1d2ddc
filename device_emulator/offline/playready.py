"""PlayReady-style offline adapter: persistent XMR licenses and Secure Delete.

A stored license is the XMR license itself (its keys encrypted to this
device's ECC key); loading it checks the binding and the AES-CMAC signature in
the ECC key holder. The storage window ends at the license's end date (or its
removal date, whichever comes first), the begin date is a not-before, and the
expire-after-first-play object is the playback window. On removal the device
keeps the facts of the destruction (license id, KIDs, time); ``sync`` sends
them as a Secure Delete report signed with the device key and purges the
record once the server's answer matches the report. There is no renewal.
A streaming playback with a non-persistent license ends with a Secure Stop
report (its playback start and stop), kept until the server records it.
"""

from __future__ import annotations

import json
from typing import Any

from device_emulator.acquire_playready import secure_delete, secure_stop
from device_emulator.cdm.playready import LoadedLicense, PlayReadyCdm
from device_emulator.device import Device
from device_emulator.errors import CdmError
from device_emulator.license_store import StoredLicense
from device_emulator.offline import Acknowledgement, Destruction, OfflineAdapter, OfflineLicense
from license_server.protocols.playready import SYSTEM


class PlayReadyAdapter(OfflineAdapter):
    system = SYSTEM

    def load(self, device: Device, lic: StoredLicense) -> OfflineLicense:
        cdm = PlayReadyCdm(device)
        loaded = cdm.load_stored(lic)
        if loaded.license_id != lic.license_id or not loaded.license.persistent:
            cdm.close(loaded)
            raise CdmError("LICENSE_MISMATCH", "the stored XMR license is not the recorded persistent license")
        return self.wrap(device, loaded, cdm.identity.holder)

    def wrap(self, device: Device, native: LoadedLicense, holder: Any) -> OfflineLicense:
        return OfflineLicense(SYSTEM, native.handle, holder, native.keys, native.policy(), native.license_start,
                              not_before=native.not_before, native=native)

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

    def playback_report(self, device: Device, loaded: OfflineLicense, *, start: int, stop: int) -> bytes | None:
        """Secure Stop: the end of playback of a non-persistent license (persistent ones have Secure Delete)."""
        if loaded.native.license.persistent:
            return None
        facts = {"license_id": loaded.native.license_id, "kids": [k.kid.hex() for k in loaded.keys],
                 "start": start, "stop": stop}
        return json.dumps(facts, sort_keys=True).encode()

    def report_playback(self, device: Device, record: dict[str, Any], *, server: str, url: str,
                        headers: dict[str, str] | None) -> Acknowledgement:
        try:
            facts = json.loads(record["payload"])
            kids = tuple(bytes.fromhex(k) for k in facts["kids"])
            start, stop = int(facts["start"]), int(facts["stop"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CdmError("MALFORMED_RECORD", "the Secure Stop record does not parse") from exc
        answer = secure_stop(device, server=server, license_id=record["license_id"], kids=kids, start=start,
                             stop=stop, url=url, headers=headers)
        return Acknowledgement(answer.status == "recorded", answer.status)


ADAPTER = PlayReadyAdapter()
