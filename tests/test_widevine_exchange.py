"""The Widevine-style exchange over real HTTP: grants, attestation refusals, tampering."""


import pytest

from device_emulator.cdm.widevine import CdmError, WidevineCdm
from license_server.core.model import Hdcp, LicenseKind
from license_server.errors import ERROR_CODE_HEADER
from license_server.protocols.widevine import license_protocol_pb2 as pb
from license_server.revocations import RevocationList
from tests.conftest import tracks

PERSISTENT = LicenseKind.PERSISTENT


async def test_l1_device_gets_every_track_in_a_persistent_license(widevine, make_device, store):
    device = make_device("L1")
    status, _, loaded, _ = await widevine.acquire(device, "demo-movie", PERSISTENT, privacy=True)
    assert status == 200, loaded
    assert tracks(loaded, device) == ["AUDIO", "SD", "HD", "UHD1"]
    lic = loaded.license
    assert lic.policy.can_persist and lic.policy.rental_duration_seconds == 30 * 86400
    assert lic.policy.playback_duration_seconds == 48 * 3600
    assert lic.platform_verification_status == pb.PLATFORM_HARDWARE_VERIFIED
    levels = {k.track_label: (k.level, k.required_protection.hdcp) for k in lic.key}
    assert levels["HD"] == (pb.License.KeyContainer.HW_SECURE_CRYPTO, pb.License.KeyContainer.OutputProtection.HDCP_V1)
    assert levels["UHD1"] == (pb.License.KeyContainer.HW_SECURE_ALL, pb.License.KeyContainer.OutputProtection.HDCP_V2_2)
    record = store.license(loaded.license_id)
    assert record.kind == "persistent" and record.device_id == device.device_id
    assert record.tracks == ["AUDIO", "SD", "HD", "UHD1"]


async def test_l1_keys_never_leave_the_tee(widevine, make_device):
    device = make_device("L1")
    _, _, loaded, _ = await widevine.acquire(device)
    assert not hasattr(device.tee, "export_content_keys")


async def test_l3_device_gets_audio_and_sd_only_and_keys_are_readable(widevine, make_device, keyring):
    device = make_device("L3")
    status, _, loaded, _ = await widevine.acquire(device)
    assert status == 200
    assert tracks(loaded, device) == ["AUDIO", "SD"]
    assert loaded.license.platform_verification_status == pb.PLATFORM_SOFTWARE_VERIFIED
    exported = device.tee.export_content_keys(loaded.handle)
    sd = next(t for t in keyring.catalog.title("demo-movie").tracks if t.track.value == "SD")
    assert exported[sd.kid] == sd.key  # the license really delivers the catalog key


async def test_l3_device_is_refused_a_persistent_license(widevine, make_device):
    status, headers, outcome, _ = await widevine.acquire(make_device("L3"), "demo-movie", PERSISTENT)
    assert status == 403 and headers[ERROR_CODE_HEADER] == "SECURITY_LEVEL_TOO_LOW"
    assert isinstance(outcome, CdmError) and outcome.code == "SECURITY_LEVEL_TOO_LOW"


async def test_hdcp_capability_limits_the_keys(widevine, make_device):
    device = make_device("L1", hdcp=Hdcp.V1)
    _, _, loaded, _ = await widevine.acquire(device)
    assert tracks(loaded, device) == ["AUDIO", "SD", "HD"]


@pytest.mark.parametrize("flags, code", [
    ({"rooted": True}, "DEVICE_ROOTED"),
    ({"bootloader_unlocked": True}, "BOOTLOADER_UNLOCKED"),
    ({"tampered_app": True}, "APP_NOT_GENUINE"),
])
async def test_compromised_devices_are_refused(widevine, make_device, store, flags, code):
    device = make_device("L1", **flags)
    status, headers, outcome, _ = await widevine.acquire(device)
    assert status == 403 and headers[ERROR_CODE_HEADER] == code
    assert outcome.code == code
    assert store.licenses() == []
    assert store.audit_trail()[0]["code"] == code


async def test_revoked_device_and_revoked_system_id(widevine, make_device, store):
    device, other = make_device("L1"), make_device("L3")
    revocations = RevocationList(store)  # the default namespace's list: the server sees it on the next request
    revocations.replace({"devices": [device.device_id]})
    status, headers, _, _ = await widevine.acquire(device)
    assert status == 403 and headers[ERROR_CODE_HEADER] == "DEVICE_REVOKED"
    status, _, _, _ = await widevine.acquire(other)
    assert status == 200
    revocations.replace({"system_ids": [other.record.system_id]})
    status, headers, _, _ = await widevine.acquire(other)
    assert headers[ERROR_CODE_HEADER] == "DEVICE_REVOKED"
    body = await (await widevine.client.post("/widevine/license", data=WidevineCdm(other).build_challenge(
        "demo-movie", LicenseKind.TEMPORARY, privacy=False).body)).read()
    err = pb.LicenseError.FromString(pb.SignedMessage.FromString(body).msg)
    assert err.error_code == pb.LicenseError.REVOKED_DRM_DEVICE_CERTIFICATE


async def test_stream_only_title_refuses_persistent_licenses(widevine, make_device):
    device = make_device("L1")
    status, headers, _, _ = await widevine.acquire(device, "stream-only", PERSISTENT)
    assert status == 403 and headers[ERROR_CODE_HEADER] == "OFFLINE_NOT_ALLOWED"
    status, _, _, _ = await widevine.acquire(device, "stream-only", LicenseKind.TEMPORARY)
    assert status == 200


async def test_unknown_content_is_not_found(widevine, make_device):
    status, headers, _, _ = await widevine.acquire(make_device("L1"), "no-such-title")
    assert status == 404 and headers[ERROR_CODE_HEADER] == "CONTENT_NOT_FOUND"


async def test_replayed_challenge_is_refused(widevine, make_device, store):
    device = make_device("L1")
    pending = WidevineCdm(device).build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=False)
    first = await widevine.post(pending.body)
    second = await widevine.post(pending.body)
    assert first[0] == 200
    assert second[0] == 403 and second[1][ERROR_CODE_HEADER] == "REPLAYED_CHALLENGE"
    assert len(store.licenses()) == 1


async def test_stale_challenge_is_refused(widevine, make_device, clock):
    device = make_device("L1")
    pending = WidevineCdm(device).build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=False)
    clock.advance(600)
    status, headers, _ = await widevine.post(pending.body)
    assert status == 403 and headers[ERROR_CODE_HEADER] == "REPLAYED_CHALLENGE"


async def test_challenge_modified_after_signing_is_refused(widevine, make_device):
    device = make_device("L1")
    pending = WidevineCdm(device).build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=False)
    signed = pb.SignedMessage.FromString(pending.body)
    request = pb.LicenseRequest.FromString(signed.msg)
    request.client_id.client_capabilities.max_hdcp_version = pb.ClientIdentification.ClientCapabilities.HDCP_V2_3
    signed.msg = request.SerializeToString()
    status, headers, _ = await widevine.post(signed.SerializeToString())
    assert status == 403 and headers[ERROR_CODE_HEADER] == "SIGNATURE_INVALID"


async def test_attestation_evidence_from_another_request_is_refused(widevine, make_device):
    device = make_device("L1")
    cdm = WidevineCdm(device)
    old = pb.LicenseRequest.FromString(pb.SignedMessage.FromString(
        cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=False).body).msg)
    fresh = pb.LicenseRequest.FromString(pb.SignedMessage.FromString(
        cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=False).body).msg)
    fresh.client_id.attestation.CopyFrom(old.client_id.attestation)  # replayed evidence, re-signed
    msg = fresh.SerializeToString()
    body = pb.SignedMessage(type=pb.SignedMessage.LICENSE_REQUEST, msg=msg, signature=device.tee.sign(msg))
    status, headers, _ = await widevine.post(body.SerializeToString())
    assert status == 403 and headers[ERROR_CODE_HEADER] == "ATTESTATION_INVALID"


async def test_certificate_not_chained_to_the_root_is_refused(widevine, tmp_path, clock):
    from device_emulator.device import Device, DeviceFlags
    from license_server.keygen import init_keys
    from license_server.keyring import load_keyring

    init_keys(tmp_path / "rogue", force=False, now=clock.now())  # a root nobody trusts
    rogue = load_keyring(tmp_path / "rogue")
    device = Device.create(tmp_path / "rogue-device", rogue, model=rogue.models["emulated-phone-l1"],
                           flags=DeviceFlags(), max_hdcp=Hdcp.V2_2, clock=clock)
    status, headers, _, _ = await widevine.acquire(device)
    assert status == 403 and headers[ERROR_CODE_HEADER] == "CERTIFICATE_INVALID"


async def test_license_modified_in_transit_is_rejected_by_the_device(widevine, make_device):
    device = make_device("L1")
    cdm = WidevineCdm(device)
    pending = cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=False)
    _, _, body = await widevine.post(pending.body)
    signed = pb.SignedMessage.FromString(body)
    lic = pb.License.FromString(signed.msg)
    lic.policy.license_duration_seconds = 10 * 365 * 86400  # extend the license in transit
    signed.msg = lic.SerializeToString()
    with pytest.raises(CdmError) as caught:
        cdm.process_license(pending, signed.SerializeToString())
    assert caught.value.code == "LICENSE_TAMPERED"


async def test_license_answering_another_request_is_rejected(widevine, make_device):
    device = make_device("L1")
    cdm = WidevineCdm(device)
    first = cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=False)
    second = cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=False)
    _, _, body = await widevine.post(first.body)
    with pytest.raises(CdmError) as caught:
        cdm.process_license(second, body)
    assert caught.value.code in {"LICENSE_MISMATCH", "LICENSE_TAMPERED"}


async def test_license_copied_to_another_device_cannot_be_loaded(widevine, make_device):
    owner, thief = make_device("L1"), make_device("L1")
    _, _, loaded, _ = await widevine.acquire(owner, "demo-movie", PERSISTENT)
    with pytest.raises(CdmError) as caught:
        WidevineCdm(thief).load(loaded.request_msg, loaded.wrapped_session_key, loaded.license_msg, loaded.signature)
    assert caught.value.code == "LICENSE_NOT_BOUND"
    again = WidevineCdm(owner).load(loaded.request_msg, loaded.wrapped_session_key, loaded.license_msg,
                                   loaded.signature)
    assert [i.track for i in owner.tee.key_info(again.handle)] == ["AUDIO", "SD", "HD", "UHD1"]


async def test_privacy_mode_hides_the_client_id(widevine, make_device):
    device = make_device("L1")
    cdm = WidevineCdm(device)
    await widevine.provision_service_certificate(cdm)
    pending = cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=True)
    request = pb.LicenseRequest.FromString(pb.SignedMessage.FromString(pending.body).msg)
    assert not request.HasField("client_id") and request.encrypted_client_id.encrypted_client_id
    assert device.certificate_chain not in pending.body
    status, _, body = await widevine.post(pending.body)
    assert status == 200 and cdm.process_license(pending, body).license_id


async def test_service_certificate_from_another_root_is_rejected(make_device):
    device = make_device("L1")
    forged = pb.SignedMessage(type=pb.SignedMessage.SERVICE_CERTIFICATE, msg=device.certificate_chain)
    with pytest.raises(CdmError) as caught:
        WidevineCdm(device).accept_service_certificate(forged.SerializeToString())
    assert caught.value.code == "SERVICE_CERTIFICATE_INVALID"


@pytest.mark.parametrize("body", [b"", b"\x00", b"random garbage \xff\xfe" * 7, bytes(range(256)) * 3])
async def test_bad_bodies_get_4xx_and_store_nothing(widevine, store, body):
    before = store.counts()
    status, headers, reply = await widevine.post(body)
    assert 400 <= status < 500 and headers[ERROR_CODE_HEADER] == "MALFORMED_CHALLENGE"
    assert pb.SignedMessage.FromString(reply).type == pb.SignedMessage.ERROR_RESPONSE
    assert store.counts() == before


async def test_truncated_and_oversized_challenges(widevine, make_device, store):
    pending = WidevineCdm(make_device("L1")).build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=False)
    before = store.counts()
    for cut in (len(pending.body) // 2, len(pending.body) - 3):
        status, headers, _ = await widevine.post(pending.body[:cut])
        assert 400 <= status < 500, cut
    status, headers, _ = await widevine.post(b"\x0a" * (2 * 1024 * 1024))
    assert status == 413 and headers[ERROR_CODE_HEADER] == "CHALLENGE_TOO_LARGE"
    assert store.counts() == before


async def test_healthz(client):
    response = await client.get("/healthz")
    data = await response.json()
    assert response.status == 200 and data["status"] == "ok" and "widevine" in data["systems"]
    assert data["public_test_keys"] is True
