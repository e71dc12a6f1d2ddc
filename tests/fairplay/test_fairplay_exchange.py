"""The FairPlay-style exchange over real HTTP: transports, answer shapes, rules and refusals."""

import base64
import json

import pytest

from device_emulator.cdm.fairplay import FairPlayCdm, decode_answer
from device_emulator.cdm.widevine import CdmError
from license_server.core.model import Hdcp, LicenseKind
from license_server.errors import ERROR_CODE_HEADER
from license_server.protocols.fairplay import fields
from tests.fairplay.conftest import track_names

PERSISTENT = LicenseKind.PERSISTENT


async def test_certificate_endpoint_serves_the_application_certificate(client, keyring):
    response = await client.get("/fairplay/certificate")
    assert response.status == 200 and await response.read() == keyring.fairplay_certificate
    response = await client.get("/fairplay/certificate?format=base64")
    assert base64.b64decode(await response.text()) == keyring.fairplay_certificate


async def test_l1_device_gets_every_track_streaming(fairplay, make_device, store):
    device = make_device("L1")
    status, headers, loaded, _ = await fairplay.acquire(device, "demo-movie")
    assert status == 200, loaded
    assert track_names(device, loaded) == ["AUDIO", "SD", "HD", "UHD1"]
    assert loaded.kind is LicenseKind.TEMPORARY and loaded.platform_verification == "HARDWARE_VERIFIED"
    contents = loaded.contents
    assert contents.security_level is fields.SecurityLevel.MAIN and contents.hdcp is fields.HdcpType.TYPE1
    assert contents.key_duration == fields.KeyDuration(fields.NO_LEASE, 86400, fields.KeyDurationType.RENTAL)
    assert contents.offline_key is None and contents.key_values == {}
    levels = {e.track.value: (e.security_level, e.hdcp) for e in contents.entries}
    assert levels["HD"] == (fields.SecurityLevel.BASELINE, fields.HdcpType.TYPE0)
    assert levels["AUDIO"] == (fields.SecurityLevel.AUDIO, fields.HdcpType.NONE)
    record = store.license(loaded.license_id)
    assert record.system == "fairplay" and record.device_id == device.device_id and record.kind == "temporary"


async def test_persistent_key_carries_the_offline_key_block(fairplay, make_device, store):
    device = make_device("L1")
    status, _, loaded, _ = await fairplay.acquire(device, "demo-movie", PERSISTENT)
    assert status == 200, loaded
    offline = loaded.contents.offline_key
    assert offline.storage_duration == 30 * 86400 and offline.playback_duration == 48 * 3600
    assert offline.content_id.hex() == loaded.license_id
    assert loaded.contents.key_duration.type is fields.KeyDurationType.PERSISTENCE_AND_RENTAL
    policy = loaded.policy()
    assert policy["can_persist"]
    assert policy["rental_duration"] == 30 * 86400 and policy["playback_duration"] == 48 * 3600
    assert store.license(loaded.license_id).kind == "persistent"


@pytest.mark.parametrize("shape, content_type, unwrap", [
    ("raw", "text/plain", lambda body: base64.b64decode(body)),
    ("form", "application/xml",
     lambda body: base64.b64decode(body.decode().removeprefix("<ckc>").removesuffix("</ckc>"))),
    ("json", "application/json", lambda body: base64.b64decode(json.loads(body)["ckc"])),
])
async def test_each_transport_shape_gets_its_answer_shape(fairplay, make_device, shape, content_type, unwrap):
    device = make_device("L1")
    cdm = FairPlayCdm(device)
    await fairplay.certificate(cdm)
    pending = cdm.build_spc("demo-episode")
    status, headers, body = await fairplay.post(pending.body, shape=shape, asset_id="demo-episode")
    assert status == 200 and headers["Content-Type"].startswith(content_type)
    loaded = cdm.process_ckc(pending, unwrap(body))
    assert track_names(device, loaded) == ["AUDIO", "SD", "HD"]


@pytest.mark.parametrize("accept, content_type", [
    ("application/json", "application/json"), ("text/xml", "application/xml"),
    ("text/plain;q=0.5, application/octet-stream", "application/octet-stream"), ("*/*", "application/xml"),
])
async def test_accept_header_chooses_the_answer_shape(fairplay, make_device, accept, content_type):
    device = make_device("L1")
    cdm = FairPlayCdm(device)
    await fairplay.certificate(cdm)
    pending = cdm.build_spc("demo-episode")
    status, headers, body = await fairplay.post(pending.body, shape="form", accept=accept)
    assert status == 200 and headers["Content-Type"].startswith(content_type)
    cdm.process_ckc(pending, decode_answer(body, content_type))


async def test_key_id_as_asset_id_gets_just_that_key(fairplay, make_device, keyring):
    device = make_device("L3", hdcp=Hdcp.V1)
    sd = keyring.catalog.title("demo-movie").tracks[1]
    status, _, loaded, _ = await fairplay.acquire(device, "skd://" + sd.kid.hex())
    assert status == 200 and track_names(device, loaded) == ["SD"]
    assert loaded.platform_verification == "SOFTWARE_VERIFIED"


async def test_l3_device_gets_baseline_tracks_only(fairplay, make_device):
    device = make_device("L3", hdcp=Hdcp.V2_2)
    status, _, loaded, _ = await fairplay.acquire(device, "demo-movie")
    assert status == 200 and track_names(device, loaded) == ["AUDIO", "SD", "HD"]
    assert loaded.contents.security_level is fields.SecurityLevel.BASELINE


async def test_cfg_lease_rental_and_hdcp(fairplay, make_device):
    device = make_device("L1", hdcp=Hdcp.V1)
    status, _, loaded, _ = await fairplay.acquire(device, "demo-movie", query="?cfg=(lease:600,rental:7200,hdcp:type0)")
    assert status == 200, loaded
    assert loaded.contents.key_duration == fields.KeyDuration(600, 7200, fields.KeyDurationType.LEASE_AND_RENTAL)
    assert track_names(device, loaded) == ["AUDIO", "SD", "HD"]  # no UHD: HDCP Type 1 missing
    assert {e.track.value: e.hdcp for e in loaded.contents.entries}["SD"] is fields.HdcpType.TYPE0
    assert loaded.policy()["license_duration"] == 600 and loaded.policy()["can_renew"]


async def test_cfg_persist_with_storage_and_playback_windows(fairplay, make_device):
    device = make_device("L1")
    status, _, loaded, _ = await fairplay.acquire(device, "demo-episode",
                                                  query="?cfg=(persist:true,rental:86400,playback:3600)")
    assert status == 200, loaded
    assert loaded.kind is PERSISTENT
    offline = loaded.contents.offline_key
    assert (offline.storage_duration, offline.playback_duration) == (86400, 3600)


# ---------------------------------------------------------------- refusals

async def refusal(fairplay, device, asset_id="demo-movie", kind=LicenseKind.TEMPORARY, query=""):
    status, headers, outcome, _ = await fairplay.acquire(device, asset_id, kind, query=query)
    assert isinstance(outcome, CdmError)
    body = json.loads(outcome.message)
    assert body["code"] == headers[ERROR_CODE_HEADER] and body["status"] == status
    return status, headers[ERROR_CODE_HEADER], body


async def test_lease_with_offline_is_refused(fairplay, make_device, store):
    status, code, _ = await refusal(fairplay, make_device("L1"), kind=PERSISTENT, query="?cfg=(lease:600)")
    assert (status, code) == (400, "LEASE_WITH_OFFLINE")
    status, code, _ = await refusal(fairplay, make_device("L1"), query="?cfg=(persist:true,lease:60)")
    assert (status, code) == (400, "LEASE_WITH_OFFLINE")
    assert store.licenses() == []


async def test_uhd_without_hdcp_type1_is_refused(fairplay, make_device, keyring):
    uhd = keyring.catalog.title("demo-movie").tracks[3]
    status, code, _ = await refusal(fairplay, make_device("L1", hdcp=Hdcp.V1), uhd.kid.hex())
    assert (status, code) == (403, "SECURITY_LEVEL_TOO_LOW")


async def test_uhd_on_a_baseline_device_is_refused(fairplay, make_device, keyring):
    uhd = keyring.catalog.title("demo-movie").tracks[3]
    status, code, _ = await refusal(fairplay, make_device("L3", hdcp=Hdcp.V2_2), uhd.kid.hex())
    assert (status, code) == (403, "SECURITY_LEVEL_TOO_LOW")


async def test_hd_without_hdcp_is_refused_and_sd_is_not(fairplay, make_device, keyring):
    movie = keyring.catalog.title("demo-movie")
    device = make_device("L1", hdcp=Hdcp.NONE)
    status, code, _ = await refusal(fairplay, device, movie.tracks[2].kid.hex())
    assert (status, code) == (403, "SECURITY_LEVEL_TOO_LOW")
    status, _, loaded, _ = await fairplay.acquire(device, movie.tracks[1].kid.hex())
    assert status == 200 and track_names(device, loaded) == ["SD"]


async def test_cfg_hdcp_type1_raises_hd_requirement(fairplay, make_device, keyring):
    hd = keyring.catalog.title("demo-movie").tracks[2]
    status, code, _ = await refusal(fairplay, make_device("L1", hdcp=Hdcp.V1), hd.kid.hex(), query="?cfg=(hdcp:type1)")
    assert (status, code) == (403, "SECURITY_LEVEL_TOO_LOW")


async def test_audio_only_client_gets_audio_keys_only(fairplay, make_device, keyring):
    device = make_device("L1")
    cdm = FairPlayCdm(device, audio_only=True)
    status, _, loaded, _ = await fairplay.acquire(device, "demo-movie", cdm=cdm)
    assert status == 200 and track_names(device, loaded) == ["AUDIO"]
    assert loaded.contents.security_level is fields.SecurityLevel.AUDIO
    sd = keyring.catalog.title("demo-movie").tracks[1]
    status, headers, outcome, _ = await fairplay.acquire(device, sd.kid.hex(), cdm=cdm)
    assert (status, headers[ERROR_CODE_HEADER]) == (403, "SECURITY_LEVEL_TOO_LOW")


@pytest.mark.parametrize("flags, code", [
    ({"rooted": True}, "DEVICE_ROOTED"),
    ({"tampered_app": True}, "APP_NOT_GENUINE"),
    ({"bootloader_unlocked": True}, "BOOTLOADER_UNLOCKED"),
])
async def test_compromised_devices_are_refused(fairplay, make_device, store, flags, code):
    status, got, body = await refusal(fairplay, make_device("L1", **flags))
    assert (status, got) == (403, code)
    assert store.licenses() == [] and store.audit_trail()[0]["code"] == code


async def test_revoked_device_is_refused(fairplay, make_device, store):
    from license_server.revocations import RevocationList

    device = make_device("L1")
    RevocationList(store).revoke(device_id=device.device_id)
    status, code, _ = await refusal(fairplay, device)
    assert (status, code) == (403, "DEVICE_REVOKED")


async def test_replayed_spc_is_refused(fairplay, make_device):
    device = make_device("L1")
    cdm = FairPlayCdm(device)
    await fairplay.certificate(cdm)
    pending = cdm.build_spc("demo-movie")
    assert (await fairplay.post(pending.body))[0] == 200
    status, headers, _ = await fairplay.post(pending.body)
    assert (status, headers[ERROR_CODE_HEADER]) == (403, "REPLAYED_CHALLENGE")


async def test_ckc_modified_in_transit_is_rejected_by_the_device(fairplay, make_device):
    device = make_device("L1")
    cdm = FairPlayCdm(device)
    await fairplay.certificate(cdm)
    for position in (30, -40, -5):
        pending = cdm.build_spc("demo-episode")
        status, headers, body = await fairplay.post(pending.body, accept="application/octet-stream")
        assert status == 200
        tampered = bytearray(body)
        tampered[position] ^= 0x01
        with pytest.raises(CdmError) as caught:
            cdm.process_ckc(pending, bytes(tampered))
        assert caught.value.code == "LICENSE_TAMPERED"


async def test_ckc_for_another_spc_is_rejected(fairplay, make_device):
    device = make_device("L1")
    cdm = FairPlayCdm(device)
    await fairplay.certificate(cdm)
    first, second = cdm.build_spc("demo-episode"), cdm.build_spc("demo-episode")
    _, _, body = await fairplay.post(first.body, accept="application/octet-stream")
    with pytest.raises(CdmError) as caught:
        cdm.process_ckc(second, body)
    assert caught.value.code == "LICENSE_TAMPERED"
