"""Online license acquisition: challenge, HTTP exchange, verification, storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from license_server import crypto
from license_server.core.model import Hdcp, LicenseKind, Robustness, SecurityLevel
from device_emulator import transport
from device_emulator.cdm.widevine import SYSTEM, CdmError, LoadedLicense, WidevineCdm
from device_emulator.device import Device
from device_emulator.license_store import LicenseStore, StoredLicense

DEFAULT_PATHS = {SYSTEM: "/widevine/license", "fairplay": "/fairplay/license",
                 "playready": "/playready/rightsmanager.asmx"}


@dataclass
class AcquireResult:
    status: str  # granted | refused
    system: str
    type: str
    license_id: str | None = None
    key_set_id: str | None = None
    keys: list[dict[str, Any]] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)
    platform_verification: str | None = None
    error: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def license_url(server: str, system: str, override: str | None) -> str:
    """``--license-url`` wins (query string included); else the dialect's default path."""
    if override:
        return override if "://" in override else server.rstrip("/") + "/" + override.lstrip("/")
    return server.rstrip("/") + DEFAULT_PATHS[system]


def acquire(device: Device, *, server: str, content_id: str, kind: LicenseKind, url: str | None = None,
            privacy: bool = True, headers: dict[str, str] | None = None, system: str = SYSTEM,
            use: Callable[[Any, Any], None] | None = None) -> AcquireResult:
    """Acquire a license; store it if persistent. Raises TransportError if unreachable.

    ``use(loaded, holder)`` is called with the dialect CDM's loaded license and
    the TEE object holding its session while that session is still open
    (streaming playback), before it closes.
    """
    if system == "playready":
        from device_emulator.acquire_playready import acquire_playready

        return acquire_playready(device, server=server, content_id=content_id, kind=kind, url=url, headers=headers,
                                 use=use)
    if system == "fairplay":
        from device_emulator.acquire_fairplay import acquire_fairplay

        return acquire_fairplay(device, server=server, content_id=content_id, kind=kind, url=url, headers=headers,
                                use=use)
    cdm = WidevineCdm(device)
    target = license_url(server, SYSTEM, url)
    if privacy and cdm.service_certificate is None:
        reply = transport.post(target, cdm.service_certificate_request(), headers=headers)
        try:
            cdm.accept_service_certificate(reply.body)
        except CdmError as exc:
            return _refused(kind, exc.code, exc.message)
    pending = cdm.build_challenge(content_id, kind, privacy=privacy)
    reply = transport.post(target, pending.body, headers=headers)
    try:
        loaded = cdm.process_license(pending, reply.body)
    except CdmError as exc:
        return _refused(kind, reply.error_code or exc.code, exc.message)
    result = _granted(device, loaded)
    if loaded.kind is LicenseKind.PERSISTENT:
        result.key_set_id = store_license(device, content_id, loaded, license_url=target)
    try:
        if use is not None:
            use(loaded, device.tee)
    finally:
        device.tee.close(loaded.handle)
    return result


def store_license(device: Device, content_id: str, loaded: LoadedLicense, *, license_url: str | None = None) -> str:
    key_set_id = "ksid" + crypto.random_bytes(6).hex()
    now = device.now()
    store = LicenseStore(device.license_db_path)
    try:
        store.save(StoredLicense(
            key_set_id=key_set_id, system=SYSTEM, content_id=content_id, license_id=loaded.license_id,
            kind=loaded.kind.value, version=loaded.license.id.version, state="active",
            request_msg=loaded.request_msg, license_msg=loaded.license_msg, signature=loaded.signature,
            wrapped_session_key=loaded.wrapped_session_key, policy=loaded.policy(),
            keys=key_list(device, loaded, with_values=False), received_at=now,
            license_start=loaded.license.license_start_time, first_played_at=None, updated_at=now,
            license_url=license_url,
        ))
    finally:
        store.close()
    return key_set_id


def _granted(device: Device, loaded: LoadedLicense) -> AcquireResult:
    return AcquireResult(
        status="granted", system=SYSTEM, type=loaded.kind.value, license_id=loaded.license_id,
        keys=key_list(device, loaded, with_values=device.level is SecurityLevel.L3),
        policy=loaded.policy(), platform_verification=loaded.platform_verification,
    )


def key_list(device: Device, loaded: Any, *, with_values: bool) -> list[dict[str, Any]]:
    """Key ids and tracks of a loaded TEE session (any dialect); values only for L3,
    whose keys the app can read anyway."""
    values = device.tee.export_content_keys(loaded.handle) if with_values else {}
    keys = []
    for info in device.tee.key_info(loaded.handle):
        entry: dict[str, Any] = {"kid": info.kid.hex(), "track": info.track,
                                 "robustness": Robustness(info.robustness).name, "hdcp": Hdcp(info.hdcp).name}
        if info.kid in values:
            entry["key"] = values[info.kid].hex()
        keys.append(entry)
    return keys


def _refused(kind: LicenseKind, code: str, message: str) -> AcquireResult:
    return AcquireResult(status="refused", system=SYSTEM, type=kind.value, error={"code": code, "message": message})
