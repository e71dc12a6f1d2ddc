"""Licenses for rotated content: each dialect answers the keys of the requested crypto periods."""

from __future__ import annotations

import base64

from device_emulator.cdm.playready import PlayReadyCdm
from device_emulator.cdm.widevine import WidevineCdm
from license_server import derived_keys
from license_server.core.model import LicenseKind
from license_server.protocols.playready import wrmheader
from tests.keyserver_support import ALL_TRACKS, cenc_request, signed_body

SEED = derived_keys.default_seed()
CONTENT = "rotated-title"
PROTOCOLS = "http://schemas.microsoft.com/DRM/2007/03/protocols"


def period_keys(period: int) -> list[derived_keys.DerivedKey]:
    return [derived_keys.derive(SEED, CONTENT, track, period) for track in ALL_TRACKS]


async def fetch_rotated(client) -> None:
    body = signed_body(cenc_request(CONTENT.encode(), first_crypto_period_index=0, crypto_period_count=3))
    response = await client.post("/widevine/cenc/getcontentkey/widevine_test", data=body)
    assert response.status == 200


async def test_widevine_license_carries_the_requested_periods_keys(client, make_device):
    await fetch_rotated(client)
    device = make_device("L1")
    cdm = WidevineCdm(device)
    wanted = tuple(k.kid for k in period_keys(1))
    pending = cdm.build_challenge(CONTENT, LicenseKind.TEMPORARY, key_ids=wanted, privacy=False)
    response = await client.post("/widevine/license", data=pending.body)
    loaded = cdm.process_license(pending, await response.read())
    assert {info.kid for info in device.tee.key_info(loaded.handle)} == set(wanted)  # 5 keys, period 1 only


async def test_clear_key_answer_carries_several_periods(client):
    await fetch_rotated(client)
    wanted = [period_keys(0)[0], period_keys(2)[0], period_keys(2)[4]]
    response = await client.post("/clearkey/license", json={
        "kids": [base64.urlsafe_b64encode(k.kid).rstrip(b"=").decode() for k in wanted], "type": "temporary"})
    answer = {base64.urlsafe_b64decode(k["kid"] + "=="): base64.urlsafe_b64decode(k["k"] + "==")
              for k in (await response.json())["keys"]}
    assert answer == {k.kid: k.key for k in wanted}


async def test_playready_license_carries_the_keys_of_a_multi_kid_header(client, make_device):
    await fetch_rotated(client)
    keys = period_keys(2)
    header = wrmheader.WrmHeader("4.3.0.0", tuple(
        wrmheader.HeaderKey(k.kid, wrmheader.AESCTR, wrmheader.kid_checksum(k.kid, k.key, wrmheader.AESCTR))
        for k in keys))
    pro = wrmheader.build_pro(wrmheader.build_wrmheader(header))
    cdm = PlayReadyCdm(make_device("L1"))
    pending = cdm.build_challenge(CONTENT, LicenseKind.TEMPORARY, pro=pro)
    response = await client.post("/playready/rightsmanager.asmx", data=pending.body, headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{PROTOCOLS}/AcquireLicense"'})
    loaded = cdm.process_license(pending, await response.read())
    assert {info.kid for info in loaded.keys} == {k.kid for k in keys}
