"""The device's offline license lifecycle: play, status, remove, sync, renew, clock.

Decisions come from the stored license alone, re-verified through the TEE on
every use (so an edited store cannot extend a window). First play is recorded
durably before playback is reported as started. Removal destroys the keys at
once and leaves a destruction record that ``sync`` delivers until the server
acknowledges it. A secure clock refuses offline playback after the device
clock was turned back, until the device syncs time online.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from license_server.clock import to_iso
from license_server.core.model import Hdcp, Robustness
from device_emulator import player, transport
from device_emulator.acquire import license_url
from device_emulator.cdm.widevine import CdmError, LoadedLicense, WidevineCdm
from device_emulator.device import Device
from device_emulator.license_store import LicenseStore, StoredLicense
from device_emulator.player import PlaybackDecision

ROLLBACK_TOLERANCE = 300  # seconds the device clock may go back before playback stops


class LifecycleError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _refusal(reason: str, message: str, kids: list[str], status: str, lic: StoredLicense | None = None):
    return PlaybackDecision("refused", reason, None, None, message, {k: status for k in kids},
                            lic.first_played_at if lic else None)


def _current(store: LicenseStore, content_id: str) -> StoredLicense | None:
    candidates = store.for_content(content_id)
    return next((c for c in candidates if c.state == "active"), candidates[0] if candidates else None)


def _restricted(device: Device, cdm_keys) -> frozenset[str]:
    capability = Robustness.of_level(device.level)
    hdcp = Hdcp(device.record.max_hdcp)
    return frozenset(
        k.kid.hex() for k in cdm_keys
        if k.robustness > capability or not hdcp.satisfies(Hdcp(k.hdcp))
    )


def evaluate(device: Device, store: LicenseStore, lic: StoredLicense, now: int, *,
             rollback: bool) -> tuple[PlaybackDecision, LoadedLicense | None]:
    """Decide for one stored license without changing anything."""
    kids = [k["kid"] for k in lic.keys]
    if lic.state == "removed":
        return _refusal("LICENSE_RELEASED", "This download was removed", kids, "released", lic), None
    if rollback:
        return _refusal("CLOCK_ROLLBACK", "The device clock was turned back; connect to the internet to continue",
                        kids, "status-pending", lic), None
    cdm = WidevineCdm(device)
    try:
        loaded = cdm.load_stored(lic)
    except CdmError as exc:
        return _refusal(exc.code, f"This download cannot be played ({exc.message})", kids, "internal-error", lic), None
    infos = device.tee.key_info(loaded.handle)
    decision = player.decide(loaded.policy(), license_start=loaded.license.license_start_time,
                             first_played_at=lic.first_played_at, now=now, kids=[i.kid.hex() for i in infos],
                             restricted_kids=_restricted(device, infos))
    return decision, loaded


def play(device: Device, content_id: str) -> PlaybackDecision:
    """May playback of ``content_id`` start now, offline? Records the first play durably."""
    store = LicenseStore(device.license_db_path)
    try:
        lic = _current(store, content_id)
        if lic is None:
            return _refusal("NO_LICENSE", "This title is not downloaded on this device", [], "internal-error")
        now = device.now()
        rollback = store.observe_time(now, tolerance=ROLLBACK_TOLERANCE)
        decision, loaded = evaluate(device, store, lic, now, rollback=rollback)
        if decision.decision == "play" and lic.first_played_at is None and loaded is not None:
            store.record_first_play(lic.key_set_id, now)  # durable before we say "playing"
            device.tee.close(loaded.handle)
            lic = store.get(lic.key_set_id)
            assert lic is not None
            decision, loaded = evaluate(device, store, lic, now, rollback=False)
        if loaded is not None:
            device.tee.close(loaded.handle)
        return decision
    finally:
        store.close()


def status(device: Device) -> list[dict[str, Any]]:
    """Every stored license with its two clocks and message (records nothing but trusted time)."""
    store = LicenseStore(device.license_db_path)
    try:
        now = device.now()
        rollback = store.observe_time(now, tolerance=ROLLBACK_TOLERANCE)
        rows = []
        for lic in store.all():
            decision, loaded = evaluate(device, store, lic, now, rollback=rollback)
            policy = loaded.policy() if loaded else lic.policy
            start = loaded.license.license_start_time if loaded else lic.license_start
            if loaded is not None:
                device.tee.close(loaded.handle)
            clocks = player.deadlines(policy, start, lic.first_played_at)
            rows.append({
                "key_set_id": lic.key_set_id, "system": lic.system, "content_id": lic.content_id,
                "license_id": lic.license_id, "state": lic.state, "version": lic.version,
                "downloaded_at": to_iso(lic.received_at), "first_played_at": to_iso(lic.first_played_at),
                "storage_window_ends": to_iso(clocks.get("storage")),
                "playback_window_ends": to_iso(clocks.get("playback")),
                "license_ends": to_iso(clocks.get("license")),
                **{k: v for k, v in decision.as_dict().items() if k in ("decision", "reason", "governing_clock",
                                                                         "message", "key_statuses")},
            })
        pending = store.pending_destructions()
        return rows + [{"key_set_id": p["key_set_id"], "content_id": p["content_id"], "state": "release-pending",
                        "destroyed_at": to_iso(p["destroyed_at"]), "attempts": p["attempts"],
                        "last_error": p["last_error"]} for p in pending if not any(
                            r["key_set_id"] == p["key_set_id"] for r in rows)]
    finally:
        store.close()


@dataclass
class SyncReport:
    released: list[str] = field(default_factory=list)
    release_pending: list[dict[str, str]] = field(default_factory=list)
    renewed: list[str] = field(default_factory=list)
    renewal_errors: list[dict[str, str]] = field(default_factory=list)
    server_time: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def remove(device: Device, content_id: str, *, server: str | None = None) -> SyncReport | None:
    """Destroy the keys now and keep a destruction record; send it if ``server`` is given."""
    store = LicenseStore(device.license_db_path)
    try:
        lic = next((c for c in store.for_content(content_id) if c.state == "active"), None)
        if lic is None:
            raise LifecycleError("NO_LICENSE", f"no stored license for {content_id}")
        cdm = WidevineCdm(device)
        release_body = ack_verifier = None
        try:
            loaded = cdm.load_stored(lic)
            played = device.now() - lic.first_played_at if lic.first_played_at else 0
            release_body = cdm.build_release(loaded, seconds_since_started=played)
            ack_verifier = device.tee.seal_server_mac(loaded.handle)
            device.tee.close(loaded.handle)
        except CdmError:
            pass  # an unloadable license is still destroyed; there is nothing to sign a release with
        store.destroy(lic, release_body=release_body, ack_verifier=ack_verifier, now=device.now())
    finally:
        store.close()
    return sync(device, server=server, renew=False, time=False) if server else None


def sync(device: Device, *, server: str, renew: bool = True, time: bool = True) -> SyncReport:
    """Send pending releases (until acknowledged), due renewals, and re-sync trusted time."""
    report = SyncReport()
    store = LicenseStore(device.license_db_path)
    try:
        if time:
            _sync_time(device, store, server, report)
        cdm = WidevineCdm(device)
        for record in store.pending_destructions():
            _send_release(device, store, cdm, server, record, report)
        if renew:
            for lic in store.all():
                if lic.state == "active" and lic.policy.get("can_renew") and _renewal_due(device, lic):
                    try:
                        _renew(device, store, lic, server)
                        report.renewed.append(lic.key_set_id)
                    except (LifecycleError, CdmError) as exc:
                        report.renewal_errors.append({"key_set_id": lic.key_set_id, "code": exc.code})
    finally:
        store.close()
    return report


def _sync_time(device: Device, store: LicenseStore, server: str, report: SyncReport) -> None:
    reply = transport.get(server.rstrip("/") + "/healthz")
    try:
        server_now = int(json.loads(reply.body)["time"])
    except (ValueError, KeyError, TypeError) as exc:
        raise LifecycleError("TIME_SYNC_FAILED", "the server did not report its time") from exc
    device.record.clock_offset += server_now - device.now()
    device.save()
    store.sync_time(server_now)
    report.server_time = server_now


def _send_release(device: Device, store: LicenseStore, cdm: WidevineCdm, server: str, record: dict,
                  report: SyncReport) -> None:
    key_set_id = record["key_set_id"]
    if record["release_body"] is None:
        store.release_acknowledged(key_set_id)  # nothing signable survived; the record is all we had
        report.released.append(key_set_id)
        return
    url = record["license_url"] or license_url(server, record["system"], None)
    try:
        reply = transport.post(url, record["release_body"])
    except transport.TransportError as exc:
        store.release_attempted(key_set_id, now=device.now(), error=str(exc))
        report.release_pending.append({"key_set_id": key_set_id, "error": str(exc)})
        return
    try:
        acknowledged = cdm.release_acknowledged(record["ack_verifier"], record["license_id"], reply.body)
        error = "the acknowledgement does not verify"
    except CdmError as exc:
        acknowledged, error = False, exc.code
    if acknowledged:
        store.release_acknowledged(key_set_id)
        report.released.append(key_set_id)
    else:
        store.release_attempted(key_set_id, now=device.now(), error=error)
        report.release_pending.append({"key_set_id": key_set_id, "error": error})


def _renewal_due(device: Device, lic: StoredLicense) -> bool:
    return device.now() >= lic.license_start + int(lic.policy.get("renewal_delay", 0))


def renew(device: Device, content_id: str, *, server: str) -> dict[str, Any]:
    """Renew the stored license of ``content_id`` now."""
    store = LicenseStore(device.license_db_path)
    try:
        lic = next((c for c in store.for_content(content_id) if c.state == "active"), None)
        if lic is None:
            raise LifecycleError("NO_LICENSE", f"no stored license for {content_id}")
        return _renew(device, store, lic, server)
    finally:
        store.close()


def _renew(device: Device, store: LicenseStore, lic: StoredLicense, server: str) -> dict[str, Any]:
    cdm = WidevineCdm(device)
    loaded = cdm.load_stored(lic)
    try:
        played = device.now() - lic.first_played_at if lic.first_played_at else 0
        body = cdm.build_renewal(loaded, seconds_since_started=played)
        url = lic.license_url or license_url(server, lic.system, None)
        reply = transport.post(url, body)
        return apply_renewal_reply(device, store, lic, loaded, reply.body)
    finally:
        device.tee.close(loaded.handle)


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
