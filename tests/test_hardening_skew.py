"""Issue 20 first hour: a clock-skew refusal says which clock is ahead, by how much, and how to fix it."""

from __future__ import annotations

import pytest

from device_emulator.cdm.widevine import WidevineCdm
from device_emulator.device import Device, DeviceFlags
from license_server.clock import ControlledClock
from license_server.core.freshness import skew_message
from license_server.core.model import Hdcp, LicenseKind, SecurityLevel
from tests.conftest import START


def test_message_sign_and_size():
    ahead = skew_message("challenge time", START + 7200, START, 300)
    assert "2.0 h (7200 s) ahead of the server clock" in ahead and "device-emulator sync" in ahead
    behind = skew_message("challenge time", START - 31 * 86400, START, 300)
    assert "31.0 d (2678400 s) behind the server clock" in behind


@pytest.mark.parametrize("offset, side", [(7200, "ahead of"), (-7200, "behind")])
async def test_refusal_over_http_names_the_skew(client, keyring, tmp_path, offset, side):
    device = Device.create(tmp_path / "skewed", keyring, model=keyring.default_model(SecurityLevel.L1),
                           flags=DeviceFlags(), max_hdcp=Hdcp.V2_2, clock=ControlledClock(START + offset, frozen=True))
    cdm = WidevineCdm(device)
    pending = cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY)
    response = await client.post("/widevine/license", data=pending.body)
    assert response.headers["X-DRM-Error-Code"] == "REPLAYED_CHALLENGE"
    text = (await response.read()).decode("latin-1")
    assert f"(7200 s) {side} the server clock" in text and "device-emulator sync" in text
