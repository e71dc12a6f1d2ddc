"""Fixtures of the PlayReady-style dialect tests: drive a device's CDM over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from device_emulator.cdm.playready import LoadedLicense, PendingLicense, PendingReport, PlayReadyCdm
from device_emulator.cdm.widevine import CdmError
from device_emulator.device import Device
from license_server.core.model import LicenseKind
from license_server.protocols.playready import PROTOCOLS_NS, faults

PATH = "/playready/rightsmanager.asmx"


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    @property
    def code(self) -> str | None:
        return self.headers.get("X-DRM-Error-Code")

    @property
    def fault(self) -> faults.Fault | None:
        return faults.parse_fault(self.body)


class PlayReadyExchange:
    def __init__(self, client, keyring) -> None:
        self.client = client
        self.keyring = keyring

    def cdm(self, device: Device) -> PlayReadyCdm:
        return PlayReadyCdm(device, self.keyring)

    async def post(self, body: bytes, *, operation: str = "AcquireLicense", query: str = "",
                   action: str | None = None) -> Reply:
        headers = {"Content-Type": "text/xml; charset=utf-8",
                   "SOAPAction": action if action is not None else f'"{PROTOCOLS_NS}/{operation}"'}
        response = await self.client.post(PATH + query, data=body, headers=headers)
        return Reply(response.status, dict(response.headers), await response.read())

    async def acquire(self, device: Device, content_id: str = "demo-movie",
                      kind: LicenseKind = LicenseKind.TEMPORARY, *, query: str = "", header_version: str = "4.3.0.0",
                      cdm: PlayReadyCdm | None = None) -> tuple[Reply, LoadedLicense | CdmError, PendingLicense]:
        cdm = cdm or self.cdm(device)
        pending = cdm.build_challenge(content_id, kind, header_version=header_version)
        reply = await self.post(pending.body, query=query)
        try:
            outcome: LoadedLicense | CdmError = cdm.process_license(pending, reply.body)
        except CdmError as exc:
            outcome = exc
        return reply, outcome, pending

    async def report(self, cdm: PlayReadyCdm, pending: PendingReport) -> Reply:
        return await self.post(pending.body, operation=pending.operation)


@pytest.fixture
def playready(client, keyring) -> PlayReadyExchange:
    return PlayReadyExchange(client, keyring)
