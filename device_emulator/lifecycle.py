"""The device's license lifecycle: offline play, status, remove, sync, renew, and streaming play.

Written once for every dialect; the dialect's own part (loading a stored
license through the TEE, the record of its destruction and how it is
reported, renewal) comes from :func:`device_emulator.offline.adapter_for`,
picked by the stored license's ``system``.

Decisions come from the stored license alone, re-verified through the TEE on
every use (so an edited store cannot extend a window). First play is recorded
durably before the first decrypt. When the title was downloaded, playing it
decrypts the downloaded media in the TEE and decodes it
(:mod:`device_emulator.offline.playback`). Removal destroys the keys at once
and leaves a destruction record that ``sync`` delivers until the server
acknowledges it. A secure clock refuses offline playback after the device
clock was turned back, until the device syncs time online.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from device_emulator import player, transport
from device_emulator.acquire import acquire, license_url
from device_emulator.device import Device
from device_emulator.errors import CdmError, LifecycleError
from device_emulator.license_store import LicenseStore, StoredLicense
from device_emulator.offline import OfflineLicense, adapter_for, no_renewal
from device_emulator.offline.playback import PlaybackFailure, plan_download, play_download
from device_emulator.offline.widevine import apply_renewal_reply  # noqa: F401 - part of this module's API
from device_emulator.player import PlaybackDecision
from license_server import crypto, dialects
from license_server.clock import to_iso
from license_server.core.model import Hdcp, LicenseKind, Robustness

ROLLBACK_TOLERANCE = 300  # seconds the device clock may go back before playback stops
SYSTEMS = dialects.NAMES  # dialects whose stored licenses this lifecycle handles: every one of the registry


def _refusal(reason: str, message: str, kids: list[str], status: str, lic: StoredLicense | None = None):
    return PlaybackDecision("refused", reason, None, None, message, {k: status for k in kids},
                            lic.first_played_at if lic else None, license_id=lic.license_id if lic else None)


def _current(store: LicenseStore, content_id: str, system: str | None,
             license_id: str | None = None) -> StoredLicense | None:
    """The newest active license of the title (deterministic: see ``for_content``), else its newest one."""
    candidates = store.for_content(content_id, system=system, license_id=license_id)
    return next((c for c in candidates if c.state == "active"), candidates[0] if candidates else None)


def _active(store: LicenseStore, content_id: str, system: str | None, license_id: str | None = None) -> StoredLicense:
    lic = next((c for c in store.for_content(content_id, system=system, license_id=license_id)
                if c.state == "active"), None)
    if lic is None:
        which = f" {license_id}" if license_id else ""
        raise LifecycleError("NO_LICENSE", f"no stored {system + ' ' if system else ''}license{which} for {content_id}")
    return lic


def _restricted(device: Device, keys) -> frozenset[str]:
    capability = Robustness.of_level(device.level)
    hdcp = Hdcp(device.record.max_hdcp)
    return frozenset(
        k.kid.hex() for k in keys
        if k.robustness > capability or not hdcp.satisfies(Hdcp(k.hdcp))
    )


def evaluate(device: Device, store: LicenseStore, lic: StoredLicense, now: int, *,
             rollback: bool) -> tuple[PlaybackDecision, OfflineLicense | None]:
    """Decide for one stored license without changing anything (the caller closes the session)."""
    kids = [k["kid"] for k in lic.keys]
    if lic.state == "removed":
        return _refusal("LICENSE_RELEASED", "This download was removed", kids, "released", lic), None
    if rollback:
        return _refusal("CLOCK_ROLLBACK", "The device clock was turned back; connect to the internet to continue",
                        kids, "status-pending", lic), None
    try:
        loaded = adapter_for(lic.system).load(device, lic)
    except CdmError as exc:
        return _refusal(exc.code, f"This download cannot be played ({exc.message})", kids, "internal-error", lic), None
    decision = player.decide(loaded.policy, license_start=loaded.license_start, not_before=loaded.not_before,
                             first_played_at=lic.first_played_at, now=now, kids=[i.kid.hex() for i in loaded.keys],
                             restricted_kids=_restricted(device, loaded.keys))
    return replace(decision, license_id=lic.license_id), loaded


def play(device: Device, content_id: str, *, system: str | None = None,
         license_id: str | None = None) -> PlaybackDecision:
    """May playback of ``content_id`` start now, offline? Records the first play durably.

    If the title was downloaded, its media is decrypted in the TEE and decoded;
    ``decision.media`` reports what was decrypted and decoded, and a failure
    refuses playback with its reason (``WRONG_KEY``, ``KEY_NOT_LOADED``, ...).
    """
    store = LicenseStore(device.license_db_path)
    loaded: OfflineLicense | None = None
    try:
        lic = _current(store, content_id, system, license_id)
        if lic is None:
            return _refusal("NO_LICENSE", "This title is not downloaded on this device", [], "internal-error")
        now = device.now()
        rollback = store.observe_time(now, tolerance=ROLLBACK_TOLERANCE)
        decision, loaded = evaluate(device, store, lic, now, rollback=rollback)
        if decision.decision != "play" or loaded is None:
            return decision
        try:
            plan = plan_download(device, content_id, decision.key_statuses)  # nothing decrypted yet
            if lic.first_played_at is None:
                store.record_first_play(lic.key_set_id, now)  # durable before the first decrypt
                loaded.close()
                lic = store.get(lic.key_set_id)
                assert lic is not None
                decision, loaded = evaluate(device, store, lic, now, rollback=False)
                if decision.decision != "play" or loaded is None:
                    return decision
            return replace(decision, media=play_download(plan, loaded)) if plan else decision
        except PlaybackFailure as failure:
            return _media_refusal(decision, failure)
    finally:
        if loaded is not None:
            loaded.close()
        store.close()


def _media_refusal(decision: PlaybackDecision, failure: PlaybackFailure) -> PlaybackDecision:
    statuses = dict(decision.key_statuses)
    if failure.kid:
        statuses[failure.kid] = "internal-error"
    return replace(decision, decision="refused", reason=failure.code, message=failure.message, key_statuses=statuses)


def stream(device: Device, content_id: str, *, server: str, system: str, url: str | None = None,
           headers: dict[str, str] | None = None) -> tuple[PlaybackDecision, dict[str, Any] | None]:
    """Play online with a temporary license; return the decision and the end-of-playback report, if any.

    The license is acquired, the decision taken while its TEE session is open
    (the playback clock starts now), the downloaded media decrypted and decoded
    if the title was downloaded, and the session closed. Where the dialect
    reports the end of a playback (PlayReady Secure Stop) the report is kept
    durably, sent at once and, if that fails, by every ``sync`` until recorded.
    """
    adapter = adapter_for(system)
    seen: dict[str, Any] = {}

    def use(native: Any, holder: Any) -> None:
        loaded = adapter.wrap(device, native, holder)
        now = device.now()
        decision = player.decide(loaded.policy, license_start=loaded.license_start, not_before=loaded.not_before,
                                 first_played_at=now, now=now, kids=[i.kid.hex() for i in loaded.keys],
                                 restricted_kids=_restricted(device, loaded.keys))
        if decision.decision == "play":
            try:
                plan = plan_download(device, content_id, decision.key_statuses)
                decision = replace(decision, media=play_download(plan, loaded)) if plan else decision
            except PlaybackFailure as failure:
                decision = _media_refusal(decision, failure)
        played = decision.decision == "play"
        seen.update(decision=decision, license_id=native.license_id,
                    report=adapter.playback_report(device, loaded, start=now, stop=device.now()) if played else None)

    result = acquire(device, server=server, content_id=content_id, kind=LicenseKind.TEMPORARY, url=url,
                     headers=headers, system=system, use=use)
    if result.status != "granted" or "decision" not in seen:
        error = result.error or {"code": "NO_LICENSE", "message": "no license was granted"}
        return _refusal(error["code"], f"Refused by the license server ({error['message']})", [],
                        "internal-error"), None
    if not seen["report"]:
        return seen["decision"], None
    store = LicenseStore(device.license_db_path)
    try:
        record = {"report_id": "rep" + crypto.random_bytes(6).hex(), "system": system, "content_id": content_id,
                  "license_id": seen["license_id"], "payload": seen["report"],
                  "license_url": license_url(server, system, url)}
        store.add_playback_report(**record, now=device.now())
        sent = _report_playback(device, store, server, record, SyncReport(), headers)
    finally:
        store.close()
    return seen["decision"], sent


def status(device: Device) -> list[dict[str, Any]]:
    """Every stored license with its two clocks and message (records nothing but trusted time)."""
    store = LicenseStore(device.license_db_path)
    try:
        now = device.now()
        rollback = store.observe_time(now, tolerance=ROLLBACK_TOLERANCE)
        rows = []
        for lic in store.all():
            decision, loaded = evaluate(device, store, lic, now, rollback=rollback)
            policy = loaded.policy if loaded else lic.policy
            start = loaded.license_start if loaded else lic.license_start
            if loaded is not None:
                loaded.close()
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
        rows += [{"report_id": r["report_id"], "system": r["system"], "content_id": r["content_id"],
                  "state": "report-pending", "license_id": r["license_id"], "attempts": r["attempts"],
                  "last_error": r["last_error"]} for r in store.pending_playback_reports()]
        pending = store.pending_destructions()
        return rows + [{"key_set_id": p["key_set_id"], "system": p["system"], "content_id": p["content_id"],
                        "state": "release-pending", "destroyed_at": to_iso(p["destroyed_at"]),
                        "attempts": p["attempts"], "last_error": p["last_error"]} for p in pending if not any(
                            r.get("key_set_id") == p["key_set_id"] for r in rows)]
    finally:
        store.close()


@dataclass
class SyncReport:
    released: list[str] = field(default_factory=list)  # key_set_ids purged after a verified acknowledgement
    not_found: list[str] = field(default_factory=list)  # ... of which the server knew no such license
    release_pending: list[dict[str, str]] = field(default_factory=list)
    renewed: list[str] = field(default_factory=list)
    renewal_errors: list[dict[str, str]] = field(default_factory=list)
    playback_reports: list[str] = field(default_factory=list)  # end-of-playback reports recorded by the server
    playback_reports_pending: list[dict[str, str]] = field(default_factory=list)
    server_time: int | None = None
    # where each release went and why: the license URL stored with the license (the server that
    # issued it, which holds the record) wins over --server, which only fills in a missing one
    release_destinations: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def remove(device: Device, content_id: str, *, server: str | None = None, system: str | None = None,
           headers: dict[str, str] | None = None, license_id: str | None = None) -> SyncReport | None:
    """Destroy the keys now and keep a destruction record; send it if ``server`` is given."""
    store = LicenseStore(device.license_db_path)
    try:
        lic = _active(store, content_id, system, license_id)
        try:
            adapter = adapter_for(lic.system)
        except CdmError as exc:
            raise LifecycleError(exc.code, exc.message) from exc
        now = device.now()
        try:
            loaded: OfflineLicense | None = adapter.load(device, lic)
        except CdmError:
            loaded = None  # an unloadable license is still destroyed
        try:
            destruction = adapter.destruction(device, lic, loaded, now)
        finally:
            if loaded is not None:
                loaded.close()
        store.destroy(lic, release_body=destruction.payload, ack_verifier=destruction.ack_verifier, now=now)
    finally:
        store.close()
    return sync(device, server=server, renew=False, time=False, headers=headers) if server else None


def sync(device: Device, *, server: str, renew: bool = True, time: bool = True,
         headers: dict[str, str] | None = None) -> SyncReport:
    """Re-sync trusted time, send pending destruction reports (until acknowledged) and due renewals."""
    report = SyncReport()
    store = LicenseStore(device.license_db_path)
    try:
        if time:
            _sync_time(device, store, server, report)
        for record in store.pending_destructions():
            _report_destruction(device, store, server, record, report, headers)
        for record in store.pending_playback_reports():
            _report_playback(device, store, server, record, report, headers)
        if renew:
            for lic in store.all():
                if lic.state == "active" and lic.policy.get("can_renew") and _renewal_due(device, lic):
                    try:
                        _renew(device, store, lic, server, headers)
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


def _report_destruction(device: Device, store: LicenseStore, server: str, record: dict, report: SyncReport,
                        headers: dict[str, str] | None) -> None:
    key_set_id = record["key_set_id"]
    if record["release_body"] is None:
        store.release_acknowledged(key_set_id)  # nothing reportable survived; the record is all we had
        report.released.append(key_set_id)
        return
    url = record["license_url"] or license_url(server, record["system"], None)
    report.release_destinations.append({
        "key_set_id": key_set_id, "url": url,
        "why": "the license URL stored with the license (the server that issued it)" if record["license_url"]
        else "--server (no license URL was stored with the license)"})
    acknowledged, error = _attempt(lambda: adapter_for(record["system"]).report_destruction(
        device, record, server=server, url=url, headers=headers))
    if acknowledged:
        store.release_acknowledged(key_set_id)
        report.released.append(key_set_id)
        if error == "not-found":
            report.not_found.append(key_set_id)
    else:
        store.release_attempted(key_set_id, now=device.now(), error=error)
        report.release_pending.append({"key_set_id": key_set_id, "error": error})


def _report_playback(device: Device, store: LicenseStore, server: str, record: dict, report: SyncReport,
                     headers: dict[str, str] | None) -> dict[str, Any]:
    url = record["license_url"] or license_url(server, record["system"], None)
    acknowledged, detail = _attempt(lambda: adapter_for(record["system"]).report_playback(
        device, record, server=server, url=url, headers=headers))
    if acknowledged:
        store.playback_report_acknowledged(record["report_id"])
        report.playback_reports.append(record["report_id"])
        return {"report_id": record["report_id"], "license_id": record["license_id"], "status": detail}
    store.playback_report_attempted(record["report_id"], now=device.now(), error=detail)
    report.playback_reports_pending.append({"report_id": record["report_id"], "error": detail})
    return {"report_id": record["report_id"], "license_id": record["license_id"], "status": "pending",
            "error": detail}


def _attempt(send) -> tuple[bool, str]:
    """Send a report; (acknowledged, detail): the server's status, or why it did not count."""
    try:
        ack = send()
    except transport.TransportError as exc:
        return False, str(exc)
    except CdmError as exc:
        return False, exc.code
    return ack.acknowledged, ack.detail


def _renewal_due(device: Device, lic: StoredLicense) -> bool:
    return device.now() >= lic.license_start + int(lic.policy.get("renewal_delay", 0))


def renew(device: Device, content_id: str, *, server: str, system: str | None = None,
          headers: dict[str, str] | None = None, license_id: str | None = None) -> dict[str, Any]:
    """Renew the stored license of ``content_id`` now (dialects with renewal only)."""
    store = LicenseStore(device.license_db_path)
    try:
        return _renew(device, store, _active(store, content_id, system, license_id), server, headers)
    finally:
        store.close()


def _renew(device: Device, store: LicenseStore, lic: StoredLicense, server: str,
           headers: dict[str, str] | None) -> dict[str, Any]:
    adapter = adapter_for(lic.system)
    if not adapter.renewable:
        raise no_renewal(lic.system)
    loaded = adapter.load(device, lic)
    try:
        url = lic.license_url or license_url(server, lic.system, None)
        return adapter.renew(device, store, lic, loaded, url=url, headers=headers)
    finally:
        loaded.close()
