"""Streaming like a player: a temporary license, heartbeats at ``renewal_delay``, retries, and the end.

:func:`play_stream` runs one playback of ``seconds`` against the device's own
clock. A dialect's :class:`Heartbeats` does the exchanges:

* Widevine-style: the heartbeat is a RENEWAL of the license (sent to the
  license's ``renewal_server_url`` when it names one); the end is a RELEASE;
* PlayReady-style: the heartbeat is the short license re-acquired (the server
  ties it to the device's playback); the end is a Secure Stop;
* FairPlay-style: the heartbeat is a lease renewal (an SPC with the same
  playback id, state "currently playing"); the end is a lease end (state
  STOPPED).

A failed heartbeat (a transport error or a server error such as an injected
fault) is retried every ``renewal_retry_interval`` until the license ran out
and ``renewal_recovery_duration`` passed; a refusal (``STREAM_EVICTED``,
``STREAM_LIMIT_REACHED``, an expired license...) stops the playback at once with
its code. ``advance`` moves time: with time travel it moves the device clock
(and the server's test clock) instead of sleeping, so two hours take
milliseconds. The result is the timeline of events.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_emulator import transport
from device_emulator.acquire import acquire, license_url
from device_emulator.acquire_fairplay import ensure_certificate, exchange
from device_emulator.acquire_playready import secure_stop
from device_emulator.cdm.fairplay import FairPlayCdm
from device_emulator.cdm.widevine import WidevineCdm
from device_emulator.device import Device
from device_emulator.errors import CdmError, TransportError
from license_server import crypto
from license_server.core.model import LicenseKind
from license_server.protocols.fairplay import fields as fp_fields

RETRYABLE = frozenset({"INJECTED_FAULT", "INTERNAL_ERROR", "TRANSPORT_ERROR", "HTTP_ERROR", "MALFORMED_REPLY"})
STREAMS_FILE = "streams.json"  # in the device directory: playbacks left with --end none, for --resume


class StreamStop(Exception):
    """The playback cannot go on (or start): ``code`` is the server's stable code or ours."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Timeline:
    """What happened, in device seconds since the start."""

    started_at: int
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, at: int, event: str, **details: Any) -> None:
        self.events.append({"t": at - self.started_at, "event": event, **details})

    def count(self, event: str) -> int:
        return sum(1 for e in self.events if e["event"] == event)


class Heartbeats:
    """One dialect's start, heartbeat and end exchanges (the license and its session stay in the TEE)."""

    def __init__(self, device: Device, *, server: str, system: str, content_id: str, url: str | None,
                 headers: dict[str, str]) -> None:
        self.device, self.server, self.system, self.content_id = device, server, system, content_id
        self.url, self.headers = license_url(server, system, url), headers
        self.override = url
        self.policy: dict[str, Any] = {}
        self.license_id = ""

    def start(self) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """What resuming this playback later needs (kept in the device directory by ``--end none``)."""
        return {"license_id": self.license_id, "policy": self.policy, "started": self.started}

    def resume(self, state: dict[str, Any]) -> None:
        self.license_id, self.policy, self.started = state["license_id"], state["policy"], state["started"]

    def beat(self) -> None:
        raise NotImplementedError

    def end(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Drop whatever the TEE still holds for this playback."""


def _refusal(code: str | None, message: str) -> StreamStop:
    return StreamStop(code or "HTTP_ERROR", message)


class WidevineHeartbeats(Heartbeats):
    def start(self) -> None:
        self.cdm = WidevineCdm(self.device)
        pending = self.cdm.build_challenge(self.content_id, LicenseKind.TEMPORARY, privacy=False)
        reply = transport.post(self.url, pending.body, headers=self.headers)
        try:
            self.loaded = self.cdm.process_license(pending, reply.body)
        except CdmError as exc:
            raise _refusal(reply.error_code or exc.code, exc.message) from exc
        self.started = self.device.now()
        self.license_id, self.policy = self.loaded.license_id, self.loaded.policy()

    def state(self) -> dict[str, Any]:
        loaded = self.loaded
        return {**super().state(), "request_msg": loaded.request_msg.hex(), "license_msg": loaded.license_msg.hex(),
                "signature": loaded.signature.hex(), "wrapped_session_key": loaded.wrapped_session_key.hex()}

    def resume(self, state: dict[str, Any]) -> None:
        super().resume(state)
        self.cdm = WidevineCdm(self.device)
        self.loaded = self.cdm.load(*(bytes.fromhex(state[k]) for k in (
            "request_msg", "wrapped_session_key", "license_msg", "signature")))

    def beat(self) -> None:
        body = self.cdm.build_renewal(self.loaded, seconds_since_started=self.device.now() - self.started)
        reply = transport.post(self.policy.get("renewal_server_url") or self.url, body, headers=self.headers)
        try:
            self.loaded, _, _ = self.cdm.process_renewal(self.loaded, reply.body)
        except CdmError as exc:
            raise _refusal(reply.error_code or exc.code, exc.message) from exc
        self.policy = self.loaded.policy()

    def end(self) -> str:
        body = self.cdm.build_release(self.loaded, seconds_since_started=self.device.now() - self.started)
        reply = transport.post(self.url, body, headers=self.headers)
        return "released" if reply.status == 200 else f"release refused: {reply.error_code}"

    def close(self) -> None:
        if hasattr(self, "loaded"):
            self.cdm.close(self.loaded)


class ReacquireHeartbeats(Heartbeats):
    """PlayReady- and FairPlay-style: each heartbeat is a license (a lease) acquired again."""

    def _acquire(self, cdm: Any = None) -> None:
        result = acquire(self.device, server=self.server, content_id=self.content_id, kind=LicenseKind.TEMPORARY,
                         url=self.override, headers=self.headers, system=self.system, cdm=cdm)
        if result.status != "granted":
            error = result.error or {}
            raise _refusal(error.get("code"), error.get("message", "refused"))
        self.license_id, self.policy = result.license_id or "", result.policy
        self.kids = tuple(bytes.fromhex(k["kid"]) for k in result.keys)

    def start(self) -> None:
        self.started = self.device.now()
        self._acquire(self._cdm())
        self.policy = dict(self.policy)

    def beat(self) -> None:
        self._acquire(self._cdm(renewal=True))

    def state(self) -> dict[str, Any]:
        return {**super().state(), "kids": [k.hex() for k in self.kids]}

    def resume(self, state: dict[str, Any]) -> None:
        super().resume(state)
        self.kids = tuple(bytes.fromhex(k) for k in state["kids"])

    def _cdm(self, renewal: bool = False) -> Any:
        return None


class PlayReadyHeartbeats(ReacquireHeartbeats):
    def end(self) -> str:
        answer = secure_stop(self.device, server=self.server, license_id=self.license_id, kids=self.kids,
                             start=self.started, stop=self.device.now(), url=self.override, headers=self.headers)
        return f"secure stop {answer.status}"


class FairPlayHeartbeats(ReacquireHeartbeats):
    playback_id = 0

    def state(self) -> dict[str, Any]:
        return {**super().state(), "playback_id": self.playback_id}

    def resume(self, state: dict[str, Any]) -> None:
        super().resume(state)
        self.playback_id = int(state["playback_id"])

    def _cdm(self, renewal: bool = False) -> FairPlayCdm:
        cdm = FairPlayCdm(self.device)
        if not self.playback_id:
            self.playback_id = int.from_bytes(crypto.random_bytes(8), "big") or 1
        cdm.playback_id = self.playback_id
        if renewal:
            cdm.playback_state = fp_fields.PlaybackState.CURRENTLY_PLAYING_CK_REQUIRED
        return cdm

    def end(self) -> str:
        cdm = self._cdm()
        cdm.playback_state = fp_fields.PlaybackState.STOPPED
        ensure_certificate(cdm, self.server, self.headers)
        pending = cdm.build_spc(self.content_id, LicenseKind.TEMPORARY)
        try:
            ack = cdm.process_lease_end_ack(pending, exchange(cdm, self.url, pending, headers=self.headers))
        except CdmError as exc:
            return f"lease end refused: {exc.code}"
        return f"lease end acknowledged ({len(ack.released)} license(s) closed)"


DRIVERS: dict[str, type[Heartbeats]] = {
    "widevine": WidevineHeartbeats, "playready": PlayReadyHeartbeats, "fairplay": FairPlayHeartbeats,
}


def heartbeat_interval(policy: dict[str, Any], seconds: int) -> int:
    """``renewal_delay``; without one, half the lease or license duration (re-acquired licenses carry no delay)."""
    delay = int(policy.get("renewal_delay") or 0)
    if delay:
        return delay
    window = int(policy.get("lease_duration") or 0) or int(policy.get("license_duration") or 0)
    return max(1, window // 2) if window else max(1, seconds)


def _streams_file(device: Device) -> Path:
    return device.directory / STREAMS_FILE


def saved_stream(device: Device, key: str) -> dict[str, Any] | None:
    path = _streams_file(device)
    saved = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return saved.get(key)


def _keep(device: Device, key: str, state: dict[str, Any] | None) -> None:
    path = _streams_file(device)
    saved = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if state is None:
        saved.pop(key, None)
    else:
        saved[key] = state
    path.write_text(json.dumps(saved, indent=2, sort_keys=True), encoding="utf-8")


def play_stream(driver: Heartbeats, *, seconds: int, advance: Callable[[int], None], end: bool = True,
                on_started: Callable[[], None] | None = None,
                resume: bool = False) -> tuple[Timeline, StreamStop | None]:
    """Play ``seconds`` of a stream; the timeline and, if the playback stopped early, why.

    ``resume`` continues the playback this device left with ``end=False`` (its first
    exchange is then a heartbeat); ``end=False`` keeps what resuming needs.
    """
    device = driver.device
    timeline = Timeline(device.now())
    key = f"{driver.system}:{driver.content_id}"
    try:
        if resume:
            state = saved_stream(device, key)
            if state is None:
                raise StreamStop("NO_STREAM", f"this device left no {driver.system} stream of {driver.content_id}")
            driver.resume(state)
            timeline.add(device.now(), "resume", license_id=driver.license_id)
            driver.beat()
            timeline.add(device.now(), "heartbeat", license_id=driver.license_id)
        else:
            driver.start()
    except (StreamStop, TransportError) as exc:
        refusal = exc if isinstance(exc, StreamStop) else StreamStop("TRANSPORT_ERROR", str(exc))
        timeline.add(device.now(), "refused", code=refusal.code, message=refusal.message)
        return timeline, refusal
    try:
        if not resume:
            timeline.add(device.now(), "start", license_id=driver.license_id)
        if on_started is not None:
            on_started()
        stop = _heartbeat_loop(driver, timeline, seconds, advance)
        if stop is None and end:
            try:
                result = driver.end()
            except (CdmError, TransportError) as exc:
                result = f"end refused: {getattr(exc, 'code', 'TRANSPORT_ERROR')}"
            timeline.add(device.now(), "end", result=result)
        elif stop is None:
            timeline.add(device.now(), "abandoned", message="stopped without ending the session (no more heartbeats)")
        _keep(device, key, driver.state() if stop is None and not end else None)
        return timeline, stop
    finally:
        driver.close()


def _heartbeat_loop(driver: Heartbeats, timeline: Timeline, seconds: int,
                    advance: Callable[[int], None]) -> StreamStop | None:
    device = driver.device
    finish = timeline.started_at + seconds
    delay = heartbeat_interval(driver.policy, seconds)
    license_end = _license_end(driver.policy, device.now())
    due = device.now() + delay
    while due < finish:
        advance(due - device.now())
        try:
            driver.beat()
        except (StreamStop, TransportError) as exc:
            stop = exc if isinstance(exc, StreamStop) else StreamStop("TRANSPORT_ERROR", str(exc))
            now = device.now()
            timeline.add(now, "heartbeat_failed", code=stop.code, message=stop.message)
            if stop.code not in RETRYABLE:
                timeline.add(now, "stopped", code=stop.code)
                return stop
            retry = int(driver.policy.get("renewal_retry_interval") or 0) or max(1, delay // 4)
            recovery = int(driver.policy.get("renewal_recovery_duration") or 0)
            if license_end is not None and now + retry >= license_end + recovery:
                timeline.add(now, "stopped", code=stop.code, message="the renewal recovery window ran out")
                return StreamStop(stop.code, "the renewal recovery window ran out")
            due = now + retry
            continue
        now = device.now()
        timeline.add(now, "heartbeat", license_id=driver.license_id)
        delay = heartbeat_interval(driver.policy, seconds)
        license_end = _license_end(driver.policy, now)
        due = now + delay
    advance(max(0, finish - device.now()))
    return None


def _license_end(policy: dict[str, Any], start: int) -> int | None:
    durations = [int(policy.get(k) or 0) for k in ("license_duration", "rental_duration")]
    durations = [d for d in durations if d]
    return start + min(durations) if durations else None


def time_travel(device: Device, *, server: str, admin_token: str | None) -> Callable[[int], None]:
    """Move the device clock (persisted offset) and, with an admin token, the server's test clock."""
    def advance(step: int) -> None:
        if step <= 0:
            return
        device.record.clock_offset += step
        device.save()
        if admin_token:
            reply = transport.post(server.rstrip("/") + "/admin/clock", json.dumps({"advance": step}).encode(),
                                   content_type="application/json",
                                   headers={"Authorization": f"Bearer {admin_token}"})
            if reply.status != 200:
                raise TransportError(f"cannot move the server's test clock (HTTP {reply.status}); "
                                     "start it with --test-clock")

    return advance


def real_time(step: int) -> None:
    if step > 0:
        time.sleep(step)


def inject_heartbeat_failures(server: str, system: str, count: int, admin_token: str) -> str:
    """Make the next ``count`` requests of the dialect fail (the server's fault injection); the fault's id."""
    body = {"dialect": system, "action": "error", "error_code": "INJECTED_FAULT", "count": count}
    reply = transport.post(server.rstrip("/") + "/admin/faults", json.dumps(body).encode(),
                           content_type="application/json", headers={"Authorization": f"Bearer {admin_token}"})
    if reply.status not in (200, 201):
        raise TransportError(f"cannot inject faults (HTTP {reply.status}: {reply.body[:200]!r})")
    return str(json.loads(reply.body).get("id", ""))


def remove_fault(server: str, fault_id: str, admin_token: str) -> None:
    """Remove an injected fault that is left (best effort)."""
    request = urllib.request.Request(f"{server.rstrip('/')}/admin/faults/{fault_id}", method="DELETE",
                                     headers={"Authorization": f"Bearer {admin_token}"})
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except OSError:
        pass
