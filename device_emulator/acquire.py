"""The one dispatcher of online license acquisition, for every dialect of the registry.

:func:`acquire` walks the same steps whatever the dialect (see
:mod:`device_emulator.cdm.base`): the dialect's CDM, loaded from
``license_server.dialects`` (``dialect.load("device_cdm")``), prepares, builds
the challenge, the challenge is posted as the CDM frames it, the license is
verified and loaded, persistent licenses are stored (one :func:`store_license`
for every dialect), and the session is closed. :func:`challenge` stops after
framing the challenge, for ``device-emulator challenge``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from device_emulator import transport
from device_emulator.cdm.base import Cdm, Outgoing
from device_emulator.device import Device
from device_emulator.errors import CdmError, NotSupported
from device_emulator.license_store import LicenseStore, StoredLicense
from license_server import crypto, dialects
from license_server.core.model import Hdcp, LicenseKind, Robustness, SecurityLevel

CLEAR_KEY_NOTICE = ("Clear Key has no device identity: the request carries no certificate or attestation, "
                    "and the keys are readable by the application")


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
    notice: str | None = None  # what the dialect cannot offer (Clear Key: no device identity)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "notice" or v is not None}


@dataclass(frozen=True)
class HttpLink:
    """The CDM's view of the network: the server, the license URL and the request's extra headers."""

    server: str
    target: str
    headers: dict[str, str] | None = None

    def post(self, body: bytes, *, content_type: str = "application/octet-stream",
             headers: dict[str, str] | None = None) -> transport.HttpReply:
        return transport.post(self.target, body, content_type=content_type,
                              headers={**(self.headers or {}), **(headers or {})})

    def get(self, path: str) -> transport.HttpReply:
        return transport.get(self.server.rstrip("/") + path, headers=self.headers)

    def send(self, outgoing: Outgoing) -> transport.HttpReply:
        return self.post(outgoing.body, content_type=outgoing.content_type, headers=outgoing.headers)


def cdm_for(device: Device, system: str) -> Cdm:
    """The dialect's CDM for ``device``; NotSupported ``UNSUPPORTED_SYSTEM`` for an unknown dialect."""
    try:
        dialect = dialects.dialect(system)
    except KeyError as exc:
        raise NotSupported("UNSUPPORTED_SYSTEM", str(exc.args[0])) from None
    cdm: Cdm = dialect.load("device_cdm")(device)
    return cdm


def license_url(server: str, system: str, override: str | None) -> str:
    """``--license-url`` wins (query string included); else the dialect's default path."""
    if override:
        return override if "://" in override else server.rstrip("/") + "/" + override.lstrip("/")
    return server.rstrip("/") + dialects.dialect(system).license_path


def challenge(device: Device, *, system: str, content_id: str, kind: LicenseKind, server: str | None = None,
              privacy: bool = True, headers: dict[str, str] | None = None) -> Outgoing:
    """The raw challenge, framed as the dialect posts it, without sending it.

    ``server`` lets a dialect fetch what its first challenge needs (FairPlay's
    application certificate, Widevine's service certificate with ``privacy``);
    without it a dialect uses what it cached, and a FairPlay CDM that has no
    application certificate yet refuses (``NO_APP_CERTIFICATE``).
    """
    cdm = cdm_for(device, system)
    if server is not None:
        cdm.prepare(HttpLink(server, license_url(server, system, None), headers), privacy=privacy)
    pending = cdm.build_challenge(content_id, kind)
    return cdm.wire(pending)


def acquire(device: Device, *, server: str, content_id: str, kind: LicenseKind, url: str | None = None,
            privacy: bool = True, headers: dict[str, str] | None = None, system: str = "widevine",
            use: Callable[[Any, Any], None] | None = None, cdm: Cdm | None = None) -> AcquireResult:
    """Acquire a license; store it if persistent. Raises TransportError if unreachable.

    ``use(loaded, holder)`` is called with the dialect CDM's loaded license and
    the key holder of its session while that session is still open
    (streaming playback), before it closes. ``cdm`` replaces the dialect's
    default CDM (e.g. a FairPlay CDM with another SPC transport shape).
    """
    cdm = cdm or cdm_for(device, system)
    system = cdm.system
    target = license_url(server, system, url)
    link = HttpLink(server, target, headers)
    notice = None if cdm.device_identity else CLEAR_KEY_NOTICE
    try:
        cdm.prepare(link, privacy=privacy)
        pending = cdm.build_challenge(content_id, kind)
    except CdmError as exc:
        return _refused(system, kind, exc.code, exc.message, notice)
    reply = link.send(cdm.wire(pending))
    try:
        answer = cdm.license_answer(reply)
    except CdmError as exc:
        return _refused(system, kind, exc.code, exc.message, notice)
    try:
        loaded = cdm.process_license(pending, answer)
    except CdmError as exc:
        return _refused(system, kind, reply.error_code or exc.code, exc.message, notice)
    try:
        with_values = device.level is SecurityLevel.L3 or not cdm.device_identity
        result = AcquireResult(
            status="granted", system=system, type=loaded.kind.value, license_id=loaded.license_id,
            keys=key_list(cdm.holder, loaded.handle, with_values=with_values), policy=loaded.policy(),
            platform_verification=loaded.platform_verification, notice=notice,
        )
        if loaded.kind is LicenseKind.PERSISTENT:
            result.key_set_id = store_license(device, cdm, content_id, pending, loaded, license_url=target)
        cdm.settle(link, pending, loaded)
        if use is not None:
            use(loaded, cdm.holder)
    finally:
        cdm.close(loaded)
    return result


def store_license(device: Device, cdm: Cdm, content_id: str, pending: Any, loaded: Any, *,
                  license_url: str | None = None) -> str:
    """Store a persistent license of any dialect; return its key set id."""
    key_set_id = "ksid" + crypto.random_bytes(6).hex()
    now = device.now()
    parts = cdm.persisted(pending, loaded)
    store = LicenseStore(device.license_db_path)
    try:
        store.save(StoredLicense(
            key_set_id=key_set_id, system=cdm.system, content_id=content_id, license_id=loaded.license_id,
            kind=loaded.kind.value, version=parts.version, state="active", request_msg=parts.request_msg,
            license_msg=parts.license_msg, signature=parts.signature, wrapped_session_key=parts.wrapped_session_key,
            policy=loaded.policy(), keys=key_list(cdm.holder, loaded.handle, with_values=False), received_at=now,
            license_start=parts.license_start, first_played_at=None, updated_at=now, license_url=license_url,
        ))
    finally:
        store.close()
    return key_set_id


def key_list(holder: Any, handle: int, *, with_values: bool) -> list[dict[str, Any]]:
    """Key ids and tracks of a loaded session (any dialect); values only where the app can read them
    anyway (L3, Clear Key)."""
    values = holder.export_content_keys(handle) if with_values else {}
    keys = []
    for info in holder.key_info(handle):
        entry: dict[str, Any] = {"kid": info.kid.hex(), "track": info.track,
                                 "robustness": Robustness(info.robustness).name, "hdcp": Hdcp(info.hdcp).name}
        if info.kid in values:
            entry["key"] = values[info.kid].hex()
        keys.append(entry)
    return keys


def _refused(system: str, kind: LicenseKind, code: str, message: str, notice: str | None = None) -> AcquireResult:
    return AcquireResult(status="refused", system=system, type=kind.value, error={"code": code, "message": message},
                         notice=notice)
