"""Clear Key offline adapter: W3C persistent-license sessions and their release.

A stored Clear Key license is the JSON Web Key set itself: Clear Key has no
device identity, so nothing binds it to this device and anyone holding the
file holds the keys. Loading it only parses it again. A JWK set carries no
durations, so no window limits playback. On removal the device keeps the
W3C release message (``{"kids": [...]}``); ``sync`` sends it and purges the
record once the server's acknowledgement lists every released key id. There
is no renewal and no end-of-playback report.
"""

from __future__ import annotations

from typing import Any

from device_emulator import transport
from device_emulator.cdm.clearkey import SYSTEM, ClearKeyCdm, LoadedLicense
from device_emulator.device import Device
from device_emulator.errors import CdmError
from device_emulator.license_store import StoredLicense
from device_emulator.offline import Acknowledgement, Destruction, OfflineAdapter, OfflineLicense
from license_server.errors import DrmError
from license_server.protocols import clearkey as codec


class ClearKeyAdapter(OfflineAdapter):
    system = SYSTEM

    def load(self, device: Device, lic: StoredLicense) -> OfflineLicense:
        cdm = ClearKeyCdm(device)
        loaded = cdm.load_stored(lic.license_msg)
        if loaded.license_id != lic.license_id:
            cdm.close(loaded)
            raise CdmError("LICENSE_MISMATCH", "the stored JWK set is not the recorded license")
        return OfflineLicense(SYSTEM, loaded.handle, cdm.holder, loaded.keys, lic.policy, lic.license_start,
                              native=loaded)

    def wrap(self, device: Device, native: LoadedLicense, holder: Any) -> OfflineLicense:
        return OfflineLicense(SYSTEM, native.handle, holder, native.keys, native.policy(), native.received_at,
                              native=native)

    def destruction(self, device: Device, lic: StoredLicense, loaded: OfflineLicense | None,
                    now: int) -> Destruction:
        return Destruction(ClearKeyCdm(device).release_message([bytes.fromhex(k["kid"]) for k in lic.keys]))

    def report_destruction(self, device: Device, record: dict[str, Any], *, server: str, url: str,
                           headers: dict[str, str] | None) -> Acknowledgement:
        body: bytes = record["release_body"]
        reply = transport.post(url, body, content_type="application/json", headers=headers)
        if reply.status != 200:
            raise CdmError(reply.error_code or f"HTTP_{reply.status}", "the server refused the release")
        try:
            kids = codec.parse_message(body).kids
        except DrmError as exc:
            raise CdmError("MALFORMED_RECORD", "the Clear Key release record does not parse") from exc
        ok = ClearKeyCdm.release_acknowledged(kids, reply.body)
        return Acknowledgement(ok, "released" if ok else "the acknowledgement does not list every key id")


ADAPTER = ClearKeyAdapter()
