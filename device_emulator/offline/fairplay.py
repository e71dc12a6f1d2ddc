"""FairPlay-style offline adapter: persistent offline keys and secure invalidation.

A stored offline key is the CKC plus its session secrets wrapped to this
device's key; loading it re-opens the CKC in the TEE (integrity, R1, level).
The storage (rental) and playback windows come from the CKC's offline key
block. On removal the device keeps a destruction record (license ids, content,
time of deletion); ``sync`` reports it in an offline-sync SPC, signed like any
SPC, and purges the record once the CKC acknowledging it verifies. Offline
keys have no lease, so there is no renewal.
"""

from __future__ import annotations

from typing import Any

from device_emulator.acquire_fairplay import report_deleted
from device_emulator.cdm.fairplay import SYSTEM, FairPlayCdm, LoadedKey
from device_emulator.device import Device
from device_emulator.errors import CdmError
from device_emulator.license_store import StoredLicense
from device_emulator.offline import Acknowledgement, Destruction, OfflineAdapter, OfflineLicense
from license_server.errors import DrmError
from license_server.protocols.fairplay import fields


class FairPlayAdapter(OfflineAdapter):
    system = SYSTEM

    def load(self, device: Device, lic: StoredLicense) -> OfflineLicense:
        if not lic.wrapped_session_key:
            raise CdmError("LICENSE_NOT_BOUND", "the offline key's session secrets are gone")
        loaded = FairPlayCdm(device).load_stored(lic.wrapped_session_key, lic.license_msg)
        if loaded.license_id != lic.license_id:
            device.tee.close(loaded.handle)
            raise CdmError("LICENSE_MISMATCH", "the stored CKC is for another license")
        return self.wrap(device, loaded, device.tee)

    def wrap(self, device: Device, native: LoadedKey, holder: Any) -> OfflineLicense:
        return OfflineLicense(SYSTEM, native.handle, holder, holder.key_info(native.handle), native.policy(),
                              native.issued_at, native=native)

    def destruction(self, device: Device, lic: StoredLicense, loaded: OfflineLicense | None,
                    now: int) -> Destruction:
        # The sync SPC is signed with the device key when it is sent, so the
        # record needs no key of the destroyed license.
        return Destruction(fields.DestructionRecord((lic.license_id,), lic.content_id, now).encode())

    def report_destruction(self, device: Device, record: dict[str, Any], *, server: str, url: str,
                           headers: dict[str, str] | None) -> Acknowledgement:
        try:
            deleted = fields.DestructionRecord.decode(record["release_body"])
        except DrmError as exc:
            raise CdmError("MALFORMED_RECORD", exc.message) from exc
        ack = report_deleted(device, server=server, license_ids=list(deleted.license_ids),
                             content_id=deleted.content_id, deleted_at=deleted.deleted_at, url=url, headers=headers)
        if record["license_id"] in ack.released:
            return Acknowledgement(True, "released")
        if record["license_id"] in ack.not_found:
            return Acknowledgement(True, "not-found")  # the server holds no such license for this device
        return Acknowledgement(False, "the acknowledgement does not name this license")


ADAPTER = FairPlayAdapter()
