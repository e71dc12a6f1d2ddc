"""Fixtures of the FairPlay-style dialect tests: drive a device's CDM over real HTTP."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest

from device_emulator.cdm.fairplay import FairPlayCdm, LoadedKey, PendingSpc, decode_answer
from device_emulator.cdm.widevine import CdmError
from device_emulator.device import Device
from license_server.core.model import LicenseKind


class FairPlayExchange:
    def __init__(self, client) -> None:
        self.client = client

    async def certificate(self, cdm: FairPlayCdm) -> None:
        response = await self.client.get("/fairplay/certificate")
        assert response.status == 200
        cdm.accept_certificate(await response.read())

    async def post(self, spc: bytes, *, shape: str = "raw", query: str = "", accept: str | None = None,
                   asset_id: str | None = None):
        encoded = base64.b64encode(spc).decode()
        headers = {"Accept": accept} if accept else {}
        if shape == "form":
            fields = {"spc": encoded, **({"assetId": asset_id} if asset_id else {})}
            data, ctype = urlencode(fields), "application/x-www-form-urlencoded"
        elif shape == "json":
            doc = {"spc": encoded, **({"assetId": asset_id} if asset_id else {})}
            data, ctype = json.dumps(doc), "application/json"
        else:
            data, ctype = spc, "application/octet-stream"
        response = await self.client.post("/fairplay/license" + query, data=data,
                                          headers={"Content-Type": ctype, **headers})
        return response.status, response.headers, await response.read()

    async def acquire(self, device: Device, asset_id: str = "demo-movie",
                      kind: LicenseKind = LicenseKind.TEMPORARY, *, shape: str = "raw", query: str = "",
                      cdm: FairPlayCdm | None = None) -> tuple[int, dict, LoadedKey | CdmError, PendingSpc]:
        cdm = cdm or FairPlayCdm(device)
        if cdm.app_certificate is None:
            await self.certificate(cdm)
        pending = cdm.build_spc(asset_id, kind)
        status, headers, body = await self.post(pending.body, shape=shape, query=query)
        if status != 200:
            return status, headers, CdmError(headers.get("X-DRM-Error-Code", "?"), body.decode()), pending
        try:
            ckc = decode_answer(body, headers["Content-Type"].split(";")[0])
            outcome: LoadedKey | CdmError = cdm.process_ckc(pending, ckc)
        except CdmError as exc:
            outcome = exc
        return status, headers, outcome, pending


@pytest.fixture
def fairplay(client) -> FairPlayExchange:
    return FairPlayExchange(client)


def track_names(device: Device, loaded: LoadedKey) -> list[str]:
    return [info.track for info in device.tee.key_info(loaded.handle)]
