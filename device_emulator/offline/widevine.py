"""Widevine-style offline adapter: stored licenses, RELEASE records, renewal.

The RELEASE request is signed with the license's client MAC key when the keys
are destroyed (afterwards there is no key left to sign with); the server MAC
key is sealed alongside it so the device can verify the acknowledgement later.
A renewal applies only with a higher ``license.id.version``.
"""

from __future__ import annotations

from typing import Any

from device_emulator import transport
from device_emulator.cdm.widevine import SYSTEM, LoadedLicense, WidevineCdm
from device_emulator.device import Device
from device_emulator.errors import CdmError
from device_emulator.license_store import LicenseStore, StoredLicense
from device_emulator.offline import Acknowledgement, Destruction, OfflineAdapter, OfflineLicense


def _played(device: Device, lic: StoredLicense) -> int:
    return device.now() - lic.first_played_at if lic.first_played_at else 0


class WidevineAdapter(OfflineAdapter):
    system = SYSTEM
    renewable = True

    def load(self, device: Device, lic: StoredLicense) -> OfflineLicense:
        return self.wrap(device, WidevineCdm(device).load_stored(lic), device.tee)

    def wrap(self, device: Device, native: LoadedLicense, holder: Any) -> OfflineLicense:
        return OfflineLicense(SYSTEM, native.handle, holder, holder.key_info(native.handle), native.policy(),
                              native.license.license_start_time, native=native)

    def destruction(self, device: Device, lic: StoredLicense, loaded: OfflineLicense | None,
                    now: int) -> Destruction:
        if loaded is None:
            return Destruction(None)  # an unloadable license has nothing to sign a release with
        body = WidevineCdm(device).build_release(loaded.native, seconds_since_started=_played(device, lic))
        return Destruction(body, device.tee.seal_server_mac(loaded.handle))

    def report_destruction(self, device: Device, record: dict[str, Any], *, server: str, url: str,
                           headers: dict[str, str] | None) -> Acknowledgement:
        reply = transport.post(url, record["release_body"], headers=headers)
        try:
            ok = WidevineCdm(device).release_acknowledged(record["ack_verifier"], record["license_id"], reply.body)
        except CdmError as exc:
            raise CdmError(reply.error_code or exc.code, exc.message) from exc
        return Acknowledgement(ok, "released" if ok else "the acknowledgement does not verify")

    def renew(self, device: Device, store: LicenseStore, lic: StoredLicense, loaded: OfflineLicense, *,
              url: str, headers: dict[str, str] | None) -> dict[str, Any]:
        body = WidevineCdm(device).build_renewal(loaded.native, seconds_since_started=_played(device, lic))
        reply = transport.post(url, body, headers=headers)
        return apply_renewal_reply(device, store, lic, loaded.native, reply.body)


def apply_renewal_reply(device: Device, store: LicenseStore, lic: StoredLicense, loaded: LoadedLicense,
                        reply: bytes) -> dict[str, Any]:
    """Verify a renewal and apply it only if its version is higher than what the device holds."""
    renewed, msg, signature = WidevineCdm(device).process_renewal(loaded, reply)
    current, offered = loaded.license.id.version, renewed.license.id.version
    if offered <= current:
        return {"applied": False, "reason": "STALE_RENEWAL", "version": current, "offered_version": offered}
    store.apply_renewal(lic.key_set_id, version=offered, license_start=renewed.license.license_start_time,
                        policy=renewed.policy(), renewal_msg=msg, renewal_signature=signature, now=device.now())
    return {"applied": True, "version": offered, "license_start": renewed.license.license_start_time}


ADAPTER = WidevineAdapter()
