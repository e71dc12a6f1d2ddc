"""Device-side conformance: the adapter a device implementation provides, and the reference one.

The device checks (offline enforcement, destruction records, secure clock)
never touch the emulator directly; they drive a :class:`DeviceAdapter`. To run
them against another device implementation, write a class with these methods
and pass it to ``run_checks(..., adapter=...)``:

=================  ==========================================================
``provision``      create a fresh device (level, model, HDCP, compromise flags)
``acquire``        get a license online (dialect, content, persistent or not,
                   ``?cfg=`` query); persistent licenses are stored
``play``           may playback start now, offline? (records the first play)
``remove``         destroy a stored license now; send the release if online
``sync``           go online: deliver pending releases, renew, take server time
``renew``          renew a stored license now
``advance_clock``  move the device's own clock (negative: turn it back)
``restart``        drop every in-memory state and reopen the device from storage
``storage``        inspect what is stored: licenses and their state,
                   destruction records waiting for acknowledgement
=================  ==========================================================

Answers are plain data (:class:`Acquired`, :class:`Decision`, dicts) so that
they can go into a report as evidence. :class:`EmulatorAdapter` implements the
interface with the reference device emulator (``device_emulator``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from license_server.core.model import Hdcp, LicenseKind

WIDEVINE_ONLY = ("widevine",)


@dataclass(frozen=True)
class Acquired:
    """The result of an online acquisition as the device saw it."""

    status: str  # granted | refused
    error_code: str | None
    license_id: str | None
    key_set_id: str | None
    policy: dict[str, Any] = field(default_factory=dict)
    tracks: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """May playback start? ``reason`` is a stable code when refused (e.g. STORAGE_WINDOW_EXPIRED)."""

    decision: str  # play | refused
    reason: str | None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeviceAdapter(Protocol):
    """What a device implementation must provide to be checked (see the module docstring)."""

    def describe(self) -> dict[str, Any]:
        """Name, version and the dialects whose offline lifecycle it implements."""

    def lifecycle_systems(self) -> tuple[str, ...]:
        """Dialects for which play/remove/sync/storage work."""

    def provision(self, *, level: str = "L1", model: str | None = None, hdcp: Hdcp = Hdcp.V2_2,
                  **flags: bool) -> Any:
        """A fresh device; the returned handle is passed to every other method."""

    def acquire(self, device: Any, *, system: str, content_id: str, persistent: bool, query: str = "",
                server: str | None = None, token: str | None = None) -> Acquired:
        """Acquire from ``server`` (default: the target) with an optional entitlement ``token``; the device
        keeps that URL, and the app that token, for renewals and releases."""

    def play(self, device: Any, content_id: str) -> Decision: ...

    def remove(self, device: Any, content_id: str, *, online: bool) -> dict[str, Any]: ...

    def sync(self, device: Any, *, server: str | None = None) -> dict[str, Any]:
        """Go online; with ``server`` None also take trusted time from the target."""

    def renew(self, device: Any, content_id: str) -> dict[str, Any]: ...

    def advance_clock(self, device: Any, seconds: int) -> int:
        """Move the device clock by ``seconds``; return the new device time."""

    def restart(self, device: Any) -> Any:
        """Reopen the device from its storage alone; return the new handle."""

    def storage(self, device: Any) -> dict[str, Any]:
        """``{"licenses": [{key_set_id, content_id, system, state, first_played_at}],
        "destruction_records": [{key_set_id, license_id, attempts, last_error, has_release}]}``."""


class EmulatorAdapter:
    """The reference implementation: ``device_emulator`` devices in the run's scratch directory."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self._tokens: dict[str, str] = {}  # device directory -> the token its app acquired with

    def _headers(self, device) -> dict[str, str] | None:
        token = self._tokens.get(str(device.directory))
        return {"X-DRM-Token": token} if token else None

    def describe(self) -> dict[str, Any]:
        return {"name": "reference device emulator (device_emulator)", "lifecycle_systems":
                list(self.lifecycle_systems())}

    def lifecycle_systems(self) -> tuple[str, ...]:
        from conformance.catalog import DEVICE_SYSTEMS
        from device_emulator import lifecycle

        # The device checks are about licenses bound to a device: Clear Key's (no identity) are not.
        return tuple(s for s in getattr(lifecycle, "SYSTEMS", WIDEVINE_ONLY) if s in DEVICE_SYSTEMS)

    def provision(self, *, level: str = "L1", model: str | None = None, hdcp: Hdcp = Hdcp.V2_2, **flags: bool):
        from conformance.dialects import make_device

        return make_device(self.ctx, level, model=model, hdcp=hdcp, **flags)

    def acquire(self, device, *, system: str, content_id: str, persistent: bool, query: str = "",
                server: str | None = None, token: str | None = None) -> Acquired:
        from conformance.entitlement import entitled, strict
        from device_emulator.acquire import acquire, license_url

        kind = LicenseKind.PERSISTENT if persistent else LicenseKind.TEMPORARY
        base = server or self.ctx.server
        if token is None and strict(self.ctx):
            token = entitled(self.ctx)
        if token:
            self._tokens[str(device.directory)] = token
        url = license_url(base, system, None) + query
        result = acquire(device, server=base, content_id=content_id, kind=kind, url=url, privacy=False,
                         system=system, headers={"X-DRM-Token": token} if token else None)
        return Acquired(result.status, (result.error or {}).get("code"), result.license_id, result.key_set_id,
                        dict(result.policy), tuple(sorted({k["track"] for k in result.keys})))

    def play(self, device, content_id: str) -> Decision:
        from device_emulator import lifecycle

        decision = lifecycle.play(device, content_id)
        return Decision(decision.decision, decision.reason, decision.message or "")

    def remove(self, device, content_id: str, *, online: bool) -> dict[str, Any]:
        from device_emulator import lifecycle

        report = lifecycle.remove(device, content_id, server=self.ctx.server if online else None,
                                  headers=self._headers(device))
        return report.as_dict() if report else {"sent": False}

    def sync(self, device, *, server: str | None = None) -> dict[str, Any]:
        from device_emulator import lifecycle, transport

        try:
            return lifecycle.sync(device, server=server or self.ctx.server, renew=False, time=server is None,
                                  headers=self._headers(device)).as_dict()
        except transport.TransportError as exc:
            return {"unreachable": str(exc)}

    def renew(self, device, content_id: str) -> dict[str, Any]:
        from device_emulator import lifecycle
        from device_emulator.errors import CdmError

        try:
            return lifecycle.renew(device, content_id, server=self.ctx.server, headers=self._headers(device))
        except (CdmError, lifecycle.LifecycleError) as exc:
            return {"applied": False, "error_code": exc.code, "message": exc.message}

    def advance_clock(self, device, seconds: int) -> int:
        device.record.clock_offset += seconds
        device.save()
        return device.now()

    def restart(self, device):
        from device_emulator.device import Device

        return Device.load(device.directory)

    def storage(self, device) -> dict[str, Any]:
        from device_emulator.license_store import LicenseStore

        store = LicenseStore(device.license_db_path)
        try:
            return {
                "licenses": [{"key_set_id": lic.key_set_id, "content_id": lic.content_id, "system": lic.system,
                              "license_id": lic.license_id, "state": lic.state,
                              "first_played_at": lic.first_played_at} for lic in store.all()],
                "destruction_records": [{"key_set_id": r["key_set_id"], "license_id": r["license_id"],
                                         "content_id": r["content_id"], "attempts": r["attempts"],
                                         "last_error": r["last_error"], "has_release": r["release_body"] is not None}
                                        for r in store.pending_destructions()],
                "secure_clock": store.secure_clock(),
            }
        finally:
            store.close()
