"""Online FairPlay-style acquisition and secure invalidation over HTTP (blocking).

``acquire_fairplay`` fetches and caches the application certificate, sends the
SPC in one of the three transport shapes players use, loads the CKC into the
TEE and stores persistent (offline) keys as ``StoredLicense`` rows with the
neutral policy keys. ``report_deleted`` sends the sync SPC for destroyed keys
and returns the server's verified acknowledgement.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable
from urllib.parse import urlencode

from license_server import crypto
from license_server.core.model import LicenseKind, SecurityLevel
from license_server.protocols.fairplay import fields
from device_emulator import transport
from device_emulator.acquire import AcquireResult, key_list, license_url
from device_emulator.cdm.fairplay import SYSTEM, FairPlayCdm, LoadedKey, PendingSpc, decode_answer
from device_emulator.cdm.widevine import CdmError
from device_emulator.device import Device
from device_emulator.license_store import LicenseStore, StoredLicense

TRANSPORTS = ("raw", "form", "json")


def certificate_url(server: str) -> str:
    return server.rstrip("/") + "/fairplay/certificate"


def ensure_certificate(cdm: FairPlayCdm, server: str, headers: dict[str, str] | None = None) -> None:
    if cdm.app_certificate is None:
        reply = transport.get(certificate_url(server), headers=headers)
        if reply.status != 200:
            raise CdmError(reply.error_code or "APP_CERTIFICATE_UNAVAILABLE",
                           f"GET /fairplay/certificate answered HTTP {reply.status}")
        cdm.accept_certificate(reply.body)


def exchange(cdm: FairPlayCdm, target: str, pending: PendingSpc, *, shape: str = "raw",
             headers: dict[str, str] | None = None) -> bytes:
    """POST the SPC in ``shape``; return the CKC bytes or raise CdmError with the server's code."""
    encoded = base64.b64encode(pending.body).decode("ascii")
    if shape == "form":
        body, content_type = urlencode({"spc": encoded, "assetId": pending.asset_id}).encode(), \
            "application/x-www-form-urlencoded"
    elif shape == "json":
        body, content_type = json.dumps({"spc": encoded, "assetId": pending.asset_id}).encode(), "application/json"
    else:
        body, content_type = pending.body, "application/octet-stream"
    reply = transport.post(target, body, content_type=content_type, headers=headers)
    if reply.status != 200:
        code, message = reply.error_code or "HTTP_ERROR", f"HTTP {reply.status}"
        try:
            doc = json.loads(reply.body)
            code, message = doc.get("code", code), doc.get("message", message)
        except ValueError:
            pass
        raise CdmError(code, message)
    return decode_answer(reply.body, reply.headers.get("content-type", "").split(";")[0].strip())


def acquire_fairplay(device: Device, *, server: str, content_id: str, kind: LicenseKind, url: str | None = None,
                     headers: dict[str, str] | None = None, shape: str = "raw",
                     use: Callable[[LoadedKey, Any], None] | None = None) -> AcquireResult:
    """Acquire a FairPlay-style key; store it if persistent. Raises TransportError if unreachable.

    ``use(loaded, holder)`` runs while the key's TEE session is open (see ``acquire.acquire``).
    """
    cdm = FairPlayCdm(device)
    target = license_url(server, SYSTEM, url)
    try:
        ensure_certificate(cdm, server, headers)
        pending = cdm.build_spc(content_id, kind)
        loaded = cdm.process_ckc(pending, exchange(cdm, target, pending, shape=shape, headers=headers))
    except CdmError as exc:
        return AcquireResult(status="refused", system=SYSTEM, type=kind.value,
                             error={"code": exc.code, "message": exc.message})
    result = AcquireResult(
        status="granted", system=SYSTEM, type=loaded.kind.value, license_id=loaded.license_id,
        keys=key_list(device, loaded, with_values=device.level is SecurityLevel.L3), policy=loaded.policy(),
        platform_verification=loaded.platform_verification,
    )
    if loaded.kind is LicenseKind.PERSISTENT:
        result.key_set_id = store_offline_key(device, cdm, content_id, pending, loaded, license_url=target)
    device.tee.fairplay_forget(pending.ref)
    try:
        if use is not None:
            use(loaded, device.tee)
    finally:
        device.tee.close(loaded.handle)
    return result


def store_offline_key(device: Device, cdm: FairPlayCdm, content_id: str, pending: PendingSpc, loaded: LoadedKey,
                      *, license_url: str | None = None) -> str:
    """Store the CKC with its session secrets wrapped to this device's key (no content key stored)."""
    key_set_id = "ksid" + crypto.random_bytes(6).hex()
    now = device.now()
    optional = {"license_url": license_url} if "license_url" in StoredLicense.__dataclass_fields__ else {}
    store = LicenseStore(device.license_db_path)
    try:
        store.save(StoredLicense(
            key_set_id=key_set_id, system=SYSTEM, content_id=content_id, license_id=loaded.license_id,
            kind=loaded.kind.value, version=loaded.contents.license_info.version, state="active",
            request_msg=pending.body, license_msg=loaded.ckc, signature=b"",
            wrapped_session_key=cdm.persist(pending), policy=loaded.policy(),
            keys=key_list(device, loaded, with_values=False), received_at=now, license_start=loaded.issued_at,
            first_played_at=None, updated_at=now, **optional,
        ))
    finally:
        store.close()
    return key_set_id


def report_deleted(device: Device, *, server: str, license_ids: list[str], content_id: str, deleted_at: int,
                   url: str | None = None, headers: dict[str, str] | None = None,
                   shape: str = "raw") -> fields.InvalidationAck:
    """Send the sync SPC for destroyed offline keys; return the verified acknowledgement."""
    cdm = FairPlayCdm(device)
    ensure_certificate(cdm, server, headers)
    pending = cdm.build_sync_spc(fields.DestructionRecord(tuple(license_ids), content_id, deleted_at))
    try:
        answer = exchange(cdm, license_url(server, SYSTEM, url), pending, shape=shape, headers=headers)
    except CdmError:
        device.tee.fairplay_forget(pending.ref)
        raise
    return cdm.process_sync_ack(pending, answer)

