"""Helpers the Widevine-style checks share: devices, raw exchanges, evidence records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.catalog import Context
from conformance.dialects import CONTENT, make_device  # noqa: F401  (re-exported for the Widevine checks)
from conformance.entitlement import default_headers
from device_emulator import transport
from device_emulator.cdm.widevine import LoadedLicense, PendingRequest, WidevineCdm
from device_emulator.device import Device
from device_emulator.errors import CdmError
from license_server.core.model import Hdcp, LicenseKind

LICENSE_PATH = "/widevine/license"


@dataclass
class Exchange:
    """One challenge/response over HTTP and what the device made of the answer."""

    url: str
    pending: PendingRequest
    reply: transport.HttpReply
    outcome: LoadedLicense | CdmError
    cdm: WidevineCdm

    @property
    def granted(self) -> bool:
        return isinstance(self.outcome, LoadedLicense)

    @property
    def code(self) -> str | None:
        if self.reply.error_code:
            return self.reply.error_code
        return self.outcome.code if isinstance(self.outcome, CdmError) else None

    def evidence(self, device: Device | None = None) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "request": {"method": "POST", "url": self.url, "bytes": len(self.pending.body),
                        "content_id": self.pending.content_id, "license_type": self.pending.kind.value},
            "response": {"status": self.reply.status, "error_code": self.reply.error_code,
                         "bytes": len(self.reply.body)},
            "device_outcome": (f"granted license {self.outcome.license_id}"
                               if isinstance(self.outcome, LoadedLicense) else f"refused: {self.outcome.code}"),
        }
        if device is not None:
            ev["device"] = {"level": device.record.level, "model": device.record.model,
                            "flags": {k: v for k, v in vars(device.record.flags).items() if v}}
        return ev


def exchange(ctx: Context, device: Device, content_id: str = CONTENT, kind: LicenseKind = LicenseKind.TEMPORARY,
             *, query: str = "") -> Exchange:
    cdm = WidevineCdm(device)
    url = ctx.url(LICENSE_PATH + query)
    pending = cdm.build_challenge(content_id, kind, privacy=False)
    reply = transport.post(url, pending.body, headers=default_headers(ctx))
    try:
        outcome: LoadedLicense | CdmError = cdm.process_license(pending, reply.body)
    except CdmError as exc:
        outcome = exc
    return Exchange(url, pending, reply, outcome, cdm)


def post_raw(ctx: Context, body: bytes, what: str) -> tuple[transport.HttpReply, dict[str, Any]]:
    url = ctx.url(LICENSE_PATH)
    reply = transport.post(url, body, headers=default_headers(ctx))
    return reply, {"request": {"method": "POST", "url": url, "bytes": len(body), "body": what},
                   "response": {"status": reply.status, "error_code": reply.error_code, "bytes": len(reply.body)}}


def key_table(device: Device, loaded: LoadedLicense) -> list[dict[str, str]]:
    """Track, robustness and HDCP of every key the device loaded."""
    from license_server.core.model import Robustness

    return [{"track": i.track, "robustness": Robustness(i.robustness).name, "hdcp": Hdcp(i.hdcp).name}
            for i in device.tee.key_info(loaded.handle)]
