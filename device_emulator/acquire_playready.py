"""Online PlayReady-style exchanges over HTTP (blocking): acquisition with its
acknowledgement, Secure Stop and Secure Delete.

``acquire_playready`` posts the SOAP challenge, binds the license, answers the
server's acknowledgement request and stores persistent licenses as
``StoredLicense`` rows with the neutral policy keys. ``secure_stop`` and
``secure_delete`` send the signed reports and return the verified answer; the
caller purges its own records only after ``secure_delete`` returns.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from license_server import crypto
from license_server.core.model import Hdcp, LicenseKind, Robustness, SecurityLevel
from license_server.protocols.playready import PROTOCOLS_NS, SYSTEM, reports
from device_emulator import transport
from device_emulator.acquire import AcquireResult, license_url
from device_emulator.cdm.playready import LoadedLicense, PendingReport, PlayReadyCdm
from device_emulator.cdm.widevine import CdmError
from device_emulator.device import Device
from device_emulator.license_store import LicenseStore, StoredLicense

log = logging.getLogger(__name__)


def post_soap(url: str, operation: str, body: bytes, headers: dict[str, str] | None = None) -> transport.HttpReply:
    soap_headers = {**(headers or {}), "SOAPAction": f'"{PROTOCOLS_NS}/{operation}"'}
    return transport.post(url, body, content_type="text/xml; charset=utf-8", headers=soap_headers)


def acquire_playready(device: Device, *, server: str, content_id: str, kind: LicenseKind, url: str | None = None,
                      headers: dict[str, str] | None = None, header_version: str = "4.3.0.0",
                      use: Callable[[LoadedLicense, Any], None] | None = None) -> AcquireResult:
    """Acquire a license; acknowledge and store it if persistent. Raises TransportError if unreachable.

    ``use(loaded, holder)`` runs while the license's session is open (see ``acquire.acquire``).
    """
    cdm = PlayReadyCdm(device)
    target = license_url(server, SYSTEM, url)
    try:
        pending = cdm.build_challenge(content_id, kind, header_version=header_version)
        reply = post_soap(target, "AcquireLicense", pending.body, headers)
        try:
            loaded = cdm.process_license(pending, reply.body)
        except CdmError as exc:
            raise CdmError(reply.error_code or exc.code, exc.message) from exc
    except CdmError as exc:
        return AcquireResult(status="refused", system=SYSTEM, type=kind.value,
                             error={"code": exc.code, "message": exc.message})
    try:
        result = AcquireResult(
            status="granted", system=SYSTEM, type=loaded.kind.value, license_id=loaded.license_id,
            keys=key_list(cdm, loaded, with_values=device.level is SecurityLevel.L3), policy=loaded.policy(),
            platform_verification=loaded.platform_verification,
        )
        if loaded.kind is LicenseKind.PERSISTENT:
            result.key_set_id = store_license(device, content_id, pending.body, loaded, license_url=target)
        if loaded.transaction_id is not None:  # the server asks for an acknowledgement
            try:
                _send(cdm, target, cdm.build_acknowledgement(loaded), headers)
            except (CdmError, transport.TransportError) as exc:  # the license is bound and stored regardless
                log.warning("license %s: acknowledgement failed: %s", loaded.license_id, exc)
        if use is not None:
            use(loaded, cdm.identity.holder)
    finally:
        cdm.close(loaded)
    return result


def key_list(cdm: PlayReadyCdm, loaded: LoadedLicense, *, with_values: bool) -> list[dict[str, Any]]:
    """Key ids and tracks; values only for L3, whose keys the app can read anyway."""
    values = cdm.export_content_keys(loaded) if with_values else {}
    keys = []
    for info in loaded.keys:
        entry: dict[str, Any] = {"kid": info.kid.hex(), "track": info.track,
                                 "robustness": Robustness(info.robustness).name, "hdcp": Hdcp(info.hdcp).name}
        if info.kid in values:
            entry["key"] = values[info.kid].hex()
        keys.append(entry)
    return keys


def store_license(device: Device, content_id: str, request: bytes, loaded: LoadedLicense, *,
                  license_url: str | None = None) -> str:
    """Keep the XMR license (keys stay encrypted to the device key inside it)."""
    key_set_id = "ksid" + crypto.random_bytes(6).hex()
    now = device.now()
    optional = {"license_url": license_url} if "license_url" in StoredLicense.__dataclass_fields__ else {}
    cdm_keys = [{"kid": k.kid.hex(), "track": k.track, "robustness": Robustness(k.robustness).name,
                 "hdcp": Hdcp(k.hdcp).name} for k in loaded.keys]
    store = LicenseStore(device.license_db_path)
    try:
        store.save(StoredLicense(
            key_set_id=key_set_id, system=SYSTEM, content_id=content_id, license_id=loaded.license_id,
            kind=loaded.kind.value, version=1, state="active", request_msg=request, license_msg=loaded.data,
            signature=loaded.signature, wrapped_session_key=b"", policy=loaded.policy(), keys=cdm_keys,
            received_at=now, license_start=loaded.license_start, first_played_at=None, updated_at=now, **optional,
        ))
    finally:
        store.close()
    return key_set_id


def _send(cdm: PlayReadyCdm, url: str, pending: PendingReport, headers: dict[str, str] | None) -> reports.ReportAnswer:
    reply = post_soap(url, pending.operation, pending.body, headers)
    try:
        return cdm.process_report_answer(pending, reply.body)
    except CdmError as exc:
        raise CdmError(reply.error_code or exc.code, exc.message) from exc


def secure_stop(device: Device, *, server: str, license_id: str, kids: tuple[bytes, ...], start: int, stop: int,
                url: str | None = None, headers: dict[str, str] | None = None) -> reports.ReportAnswer:
    """Report the end of playback of a non-persistent license."""
    cdm = PlayReadyCdm(device)
    pending = cdm.build_secure_stop(license_id, kids, start=start, stop=stop)
    return _send(cdm, license_url(server, SYSTEM, url), pending, headers)


def secure_delete(device: Device, *, server: str, license_id: str, kids: tuple[bytes, ...],
                  deleted_at: int | None = None, url: str | None = None,
                  headers: dict[str, str] | None = None) -> reports.ReportAnswer:
    """Report the destruction of a persistent license; purge only after this returns."""
    cdm = PlayReadyCdm(device)
    pending = cdm.build_secure_delete(license_id, kids, deleted_at=deleted_at)
    return _send(cdm, license_url(server, SYSTEM, url), pending, headers)

