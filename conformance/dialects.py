"""One license client per dialect, so a check can be written once for every dialect.

Each :class:`Dialect` drives the reference device emulator's CDM for its
system over real HTTP and reports an :class:`Attempt`: what was sent, what the
server answered (status, ``X-DRM-Error-Code``), and what the device made of
the answer (keys with track, robustness and HDCP; the neutral policy keys).
Key handles are closed before the attempt is returned; checks that need the
loaded license itself use the CDM directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from conformance.catalog import Context, NotApplicable
from conformance.entitlement import default_headers
from device_emulator import transport
from device_emulator.device import Device, DeviceFlags
from device_emulator.errors import CdmError
from license_server import dialects
from license_server.core.model import Hdcp, LicenseKind, Robustness, SecurityLevel
from license_server.errors import ErrorCode

CONTENT = "demo-movie"
STREAM_ONLY = "stream-only"
TEMPORARY, PERSISTENT = LicenseKind.TEMPORARY, LicenseKind.PERSISTENT


def make_device(ctx: Context, level: str = "L1", *, keyring=None, hdcp: Hdcp = Hdcp.V2_2, model: str | None = None,
                **flags: bool) -> Device:
    """Provision a fresh emulated device (from ``keyring`` or the target's keys), its clock on the server's."""
    ring = keyring or ctx.keyring
    chosen = ring.models[model] if model else ring.default_model(SecurityLevel(level))
    device = Device.create(ctx.scratch(f"device-{chosen.security_level.value}"), ring, model=chosen,
                           flags=DeviceFlags(**flags), max_hdcp=hdcp)
    from conformance.target import device_clock_offset

    offset = device_clock_offset(int(ctx.capabilities.get("server_clock_offset") or 0))
    if offset:
        device.record.clock_offset = offset
        device.save()
    return device


@dataclass
class Attempt:
    """One license request and its outcome, on the wire and on the device."""

    system: str
    url: str
    request: dict[str, Any]
    reply: transport.HttpReply
    granted: bool = False
    device_error: str | None = None
    keys: list[dict[str, Any]] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)
    platform: str | None = None
    license_id: str | None = None

    @property
    def code(self) -> str | None:
        return self.reply.error_code or self.device_error

    @property
    def tracks(self) -> list[str]:
        return sorted({k["track"] for k in self.keys})

    def evidence(self, device: Device | None = None) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "request": {"method": "POST", "url": self.url, **self.request},
            "response": {"status": self.reply.status, "error_code": self.reply.error_code,
                         "content_type": self.reply.headers.get("content-type"), "bytes": len(self.reply.body)},
            "device_outcome": (f"granted license {self.license_id}" if self.granted
                               else f"refused: {self.code}"),
        }
        if self.granted:
            ev["license"] = {"keys": self.keys, "platform_verification": self.platform}
        if device is not None:
            ev["device"] = {"level": device.record.level, "model": device.record.model,
                            "system_id": device.record.system_id, "device_id": device.device_id,
                            "flags": {k: v for k, v in vars(device.record.flags).items() if v}}
        return ev


def _key_rows(infos) -> list[dict[str, Any]]:
    return [{"kid": i.kid.hex(), "track": i.track, "robustness": Robustness(i.robustness).name,
             "hdcp": Hdcp(i.hdcp).name} for i in infos]


class Dialect:
    """A dialect's license exchange as the conformance checks need it."""

    name = ""

    @property
    def path(self) -> str:
        """The dialect's license endpoint, from the registry."""
        return dialects.dialect(self.name).license_path

    def url(self, ctx: Context, query: str = "") -> str:
        return ctx.url(self.path + query)

    @staticmethod
    def headers(ctx: Context, given: dict[str, str] | None) -> dict[str, str]:
        """``given`` headers, or what every request carries (an entitlement token in strict mode)."""
        return default_headers(ctx) if given is None else given

    def refusal_status(self, code: str) -> int:
        """The HTTP status a refusal with stable ``code`` has in this dialect."""
        return ErrorCode[code].status  # every member is named after its code

    def post(self, ctx: Context, body: bytes, *, query: str = "",
             headers: dict[str, str] | None = None) -> transport.HttpReply:
        raise NotImplementedError

    def acquire(self, ctx: Context, device: Device | None, content_id: str = CONTENT, kind: LicenseKind = TEMPORARY,
                *, query: str = "", cdm: Any = None, headers: dict[str, str] | None = None) -> Attempt:
        """Request a license (extra request ``headers``, e.g. an entitlement token) and load the answer."""
        raise NotImplementedError

    def cdm(self, ctx: Context, device: Device, cls: Any = None) -> Any:
        """The emulated CDM (of class ``cls``, default the dialect's own) checks build messages with."""
        raise NotImplementedError(f"the {self.name} conformance client builds no CDM")

    def complete(self, ctx: Context, device: Device, cdm: Any, pending: Any, *, query: str = "",
                 headers: dict[str, str] | None = None) -> Attempt:
        """Send an already built (possibly altered) challenge and load the answer."""
        raise NotImplementedError


class WidevineDialect(Dialect):
    name = "widevine"

    def post(self, ctx: Context, body: bytes, *, query: str = "",
             headers: dict[str, str] | None = None) -> transport.HttpReply:
        return transport.post(self.url(ctx, query), body, headers=self.headers(ctx, headers))

    def acquire(self, ctx, device, content_id=CONTENT, kind=TEMPORARY, *, query="", cdm=None, headers=None) -> Attempt:
        from device_emulator.cdm.widevine import WidevineCdm

        cdm = cdm or WidevineCdm(device)
        return self.complete(ctx, device, cdm, cdm.build_challenge(content_id, kind, privacy=False), query=query,
                             headers=headers)

    def complete(self, ctx: Context, device: Device, cdm: Any, pending: Any, *, query: str = "",
                 headers: dict[str, str] | None = None) -> Attempt:
        """Send an already built (possibly altered) challenge and load the answer."""
        reply = self.post(ctx, pending.body, query=query, headers=headers)
        attempt = Attempt(self.name, self.url(ctx, query), {"bytes": len(pending.body), "content_id":
                          pending.content_id, "license_type": pending.kind.value}, reply)
        try:
            loaded = cdm.process_license(pending, reply.body)
        except CdmError as exc:
            attempt.device_error = exc.code
            return attempt
        attempt.granted, attempt.license_id = True, loaded.license_id
        attempt.keys = _key_rows(device.tee.key_info(loaded.handle))
        attempt.policy, attempt.platform = loaded.policy(), loaded.platform_verification
        device.tee.close(loaded.handle)
        return attempt


class FairPlayDialect(Dialect):
    name = "fairplay"

    def post(self, ctx: Context, body: bytes, *, query: str = "",
             headers: dict[str, str] | None = None) -> transport.HttpReply:
        return transport.post(self.url(ctx, query), body, headers={"Accept": "application/octet-stream",
                                                                   **self.headers(ctx, headers)})

    def cdm(self, ctx: Context, device: Device, cls: Any = None) -> Any:
        from device_emulator.acquire_fairplay import ensure_certificate
        from device_emulator.cdm.fairplay import FairPlayCdm

        cdm = (cls or FairPlayCdm)(device)
        ensure_certificate(cdm, ctx.server)
        return cdm

    def acquire(self, ctx, device, content_id=CONTENT, kind=TEMPORARY, *, query="", cdm=None, headers=None) -> Attempt:
        cdm = cdm or self.cdm(ctx, device)
        return self.complete(ctx, device, cdm, cdm.build_spc(content_id, kind), query=query, headers=headers)

    def complete(self, ctx: Context, device: Device, cdm: Any, pending: Any, *, query: str = "",
                 headers: dict[str, str] | None = None) -> Attempt:
        from device_emulator.cdm.fairplay import decode_answer

        sent = pending.body
        reply = self.post(ctx, sent, query=query, headers=headers)
        attempt = Attempt(self.name, self.url(ctx, query), {"bytes": len(sent), "content_id": pending.asset_id,
                          "license_type": pending.kind.value, "content_type": "application/octet-stream"}, reply)
        try:
            if reply.status != 200:
                raise CdmError(reply.error_code or f"HTTP_{reply.status}", "refused by the server")
            ckc = decode_answer(reply.body, reply.headers.get("content-type", "").split(";")[0].strip())
            loaded = cdm.process_ckc(pending, ckc)
        except CdmError as exc:
            attempt.device_error = exc.code
            device.tee.fairplay_forget(pending.ref)
            return attempt
        attempt.granted, attempt.license_id = True, loaded.license_id
        attempt.keys = _key_rows(device.tee.key_info(loaded.handle))
        attempt.policy, attempt.platform = loaded.policy(), loaded.platform_verification
        device.tee.fairplay_forget(pending.ref)
        device.tee.close(loaded.handle)
        return attempt


class PlayReadyDialect(Dialect):
    name = "playready"

    def refusal_status(self, code: str) -> int:
        from license_server.protocols.playready.faults import FAULT_HTTP_STATUS

        return FAULT_HTTP_STATUS  # every refusal is a SOAP Fault on HTTP 500, as the real service answers

    def post(self, ctx: Context, body: bytes, *, query: str = "", headers: dict[str, str] | None = None,
             operation: str = "AcquireLicense") -> transport.HttpReply:
        from device_emulator.acquire_playready import post_soap

        return post_soap(self.url(ctx, query), operation, body, self.headers(ctx, headers))

    def cdm(self, ctx: Context, device: Device, cls: Any = None, keyring: Any = None) -> Any:
        from device_emulator.cdm.playready import PlayReadyCdm

        if ctx.keyring.playready is None:
            raise NotApplicable("the keys directory has no playready/ material (run `license-server keys init`)")
        return (cls or PlayReadyCdm)(device, keyring or ctx.keyring)

    def acquire(self, ctx, device, content_id=CONTENT, kind=TEMPORARY, *, query="", cdm=None, headers=None) -> Attempt:
        cdm = cdm or self.cdm(ctx, device)
        return self.complete(ctx, device, cdm, cdm.build_challenge(content_id, kind), query=query, headers=headers)

    def complete(self, ctx: Context, device: Device, cdm: Any, pending: Any, *, query: str = "",
                 headers: dict[str, str] | None = None) -> Attempt:
        sent = pending.body
        reply = self.post(ctx, sent, query=query, headers=headers)
        attempt = Attempt(self.name, self.url(ctx, query), {"bytes": len(sent), "content_id": pending.content_id,
                          "license_type": pending.kind.value, "soap_action": "AcquireLicense"}, reply)
        try:
            loaded = cdm.process_license(pending, reply.body)
        except CdmError as exc:
            attempt.device_error = exc.code
            return attempt
        attempt.granted, attempt.license_id = True, loaded.license_id
        attempt.keys = _key_rows(loaded.keys)
        attempt.policy, attempt.platform = loaded.policy(), loaded.platform_verification
        cdm.close(loaded)
        return attempt


class ClearKeyDialect(Dialect):
    name = "clearkey"

    def post(self, ctx: Context, body: bytes, *, query: str = "",
             headers: dict[str, str] | None = None) -> transport.HttpReply:
        return transport.post(self.url(ctx, query), body, content_type="application/json",
                              headers=self.headers(ctx, headers))

    def acquire(self, ctx, device=None, content_id=CONTENT, kind=TEMPORARY, *, query="", cdm=None,
                headers=None) -> Attempt:
        from license_server.protocols.clearkey import b64url_decode, b64url_encode

        title = ctx.keyring.catalog.title(content_id)
        if title is None:
            raise NotApplicable(f"{content_id} is not in the catalog of the keys directory")
        session_type = "persistent-license" if kind is PERSISTENT else "temporary"
        doc = {"kids": [b64url_encode(t.kid) for t in title.tracks], "type": session_type}
        body = json.dumps(doc).encode()
        reply = self.post(ctx, body, query=query, headers=headers)
        attempt = Attempt(self.name, self.url(ctx, query), {"body": doc}, reply)
        if reply.status != 200:
            attempt.device_error = reply.error_code or f"HTTP_{reply.status}"
            return attempt
        try:
            answer = json.loads(reply.body)
            tracks = {t.kid: t.track.value for t in title.tracks}
            attempt.keys = [{"kid": b64url_decode(k["kid"]).hex(), "track": tracks.get(b64url_decode(k["kid"]), "?"),
                             "robustness": "NONE", "hdcp": "NONE"} for k in answer["keys"]]
            attempt.policy = {"can_persist": answer.get("type") == "persistent-license", "type": answer.get("type")}
        except (ValueError, KeyError, TypeError) as exc:
            attempt.device_error = f"MALFORMED_REPLY: {exc}"
            return attempt
        attempt.granted = True
        return attempt


DIALECTS: dict[str, Dialect] = {d.name: d.load("conformance_client")() for d in dialects.REGISTRY}
"""The conformance client of every dialect of the registry (``dialect.load("conformance_client")``)."""


def dialect(ctx: Context) -> Dialect:
    return DIALECTS[ctx.system]
