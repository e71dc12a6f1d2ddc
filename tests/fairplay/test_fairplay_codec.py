"""SPC and CKC construction against the device CDM, without HTTP."""

import base64

import pytest

from device_emulator.cdm.fairplay import FairPlayCdm, decode_answer
from device_emulator.cdm.widevine import CdmError
from license_server import crypto
from license_server.core.model import Grant, Hdcp, LicenseKind, LicensePolicy, Robustness, Track, TrackKey
from license_server.crypto import fairplay as fpcrypto
from license_server.errors import DrmError, ErrorCode
from license_server.protocols.common import attestation_nonce
from license_server.protocols.fairplay import ckc, fields, spc
from license_server.protocols.fairplay.policy import TRACK_REQUIREMENTS
from license_server.protocols.fairplay.tllv import Tag
from tests.conftest import START


@pytest.fixture
def cdm(make_device, keyring):
    cdm = FairPlayCdm(make_device("L1", hdcp=Hdcp.V2_2))
    cdm.accept_certificate(keyring.fairplay_certificate)
    return cdm


def parse(body, keyring):
    return spc.parse_spc(body, app_certificate=keyring.fairplay_certificate, app_key_pem=keyring.fairplay_key_pem)


def grant_for(kind=LicenseKind.TEMPORARY, policy=LicensePolicy(license_duration=86400), tracks=(Track.SD,)):
    keys = tuple(TrackKey(bytes([i]) * 16, bytes([0x40 + i]) * 16, t, TRACK_REQUIREMENTS[t].robustness, Hdcp.NONE)
                 for i, t in enumerate(tracks, 1))
    return Grant("ab" * 16, "demo-movie", kind, keys, policy, START, None)


def test_spc_from_the_cdm_parses_into_a_neutral_challenge(cdm, keyring):
    pending = cdm.build_spc("demo-movie", LicenseKind.PERSISTENT)
    parsed = parse(pending.body, keyring)
    challenge = parsed.challenge
    assert challenge.system == "fairplay" and challenge.content_id == "demo-movie" and challenge.key_ids == ()
    assert challenge.license_kind is LicenseKind.PERSISTENT and challenge.request_id == pending.seed
    assert challenge.request_time == START
    claims = challenge.device
    assert claims.max_hdcp is Hdcp.V2_2 and claims.certificate_chain == cdm.device.certificate_chain
    assert claims.evidence.nonce == attestation_nonce(pending.seed) and claims.evidence.from_tee
    crypto.rsa_pss_verify(cdm.device.tee.public_key, claims.signed_payload, claims.signature)
    flags = parsed.capabilities.flags
    assert flags & fields.Capability.SECURITY_LEVEL_MAIN and flags & fields.Capability.HDCP_TYPE1
    assert len(parsed.secrets.sk) == 16 and len(parsed.secrets.r1) == 44 and parsed.secrets.seed == pending.seed
    assert parsed.secrets.hu == __import__("hashlib").sha1(bytes.fromhex(cdm.device.device_id)).digest()
    assert parsed.offline_sync is None and not parsed.audio_only


def test_spc_header_is_the_public_version_2_layout(cdm, keyring):
    body = cdm.build_spc("demo-movie").body
    assert body[:8] == bytes.fromhex("0000000200000000")
    assert body[280:300] == fpcrypto.certificate_hash(keyring.fairplay_certificate)
    assert int.from_bytes(body[300:304], "big") == len(body) - 304
    spc_key = fpcrypto.unwrap_spc_key(keyring.fairplay_key_pem, body[24:280])
    assert len(spc_key) == 16


def test_session_block_integrity_mismatch_is_refused(keyring):
    cert = keyring.fairplay_certificate
    spc_key, r2 = crypto.random_bytes(16), crypto.random_bytes(21)
    block = spc.seal_session_block(fpcrypto.derive_dask(spc_key, r2), crypto.random_bytes(16), bytes(16), bytes(20),
                                   bytes(44), b"\x01" * 16)
    body = spc.build_spc(app_certificate=cert, app_public_key=fpcrypto.app_certificate_public_key(cert),
                         sign=lambda payload: b"sig", spc_key=spc_key, iv=bytes(16), blocks=[
                             (Tag.SESSION_KEY_R1, block), (Tag.SESSION_KEY_R1_INTEGRITY, b"\x02" * 16),
                             (Tag.R2, r2), (Tag.ANTI_REPLAY_SEED, bytes(16))])
    with pytest.raises(DrmError) as caught:
        parse(body, keyring)
    assert caught.value.code is ErrorCode.SIGNATURE_INVALID


def test_ckc_built_for_the_spc_opens_in_the_cdm_with_the_keys_in_the_tee(cdm, keyring):
    pending = cdm.build_spc("demo-movie")
    parsed = parse(pending.body, keyring)
    body = ckc.build_ckc(grant_for(tracks=(Track.AUDIO, Track.SD)), parsed.secrets)
    assert body[:4] == b"\x00\x00\x00\x01" and int.from_bytes(body[24:28], "big") == len(body) - 28
    loaded = cdm.process_ckc(pending, body)
    assert loaded.license_id == "ab" * 16 and loaded.contents.key_values == {}
    assert [i.track for i in cdm.device.tee.key_info(loaded.handle)] == ["AUDIO", "SD"]
    assert not hasattr(cdm.device.tee, "export_content_keys")  # L1: no way to read the keys


def test_ckc_requiring_main_is_refused_by_a_baseline_device(make_device, keyring):
    cdm = FairPlayCdm(make_device("L3"))
    cdm.accept_certificate(keyring.fairplay_certificate)
    pending = cdm.build_spc("demo-movie")
    body = ckc.build_ckc(grant_for(tracks=(Track.UHD1,)), parse(pending.body, keyring).secrets)
    with pytest.raises(CdmError) as caught:
        cdm.process_ckc(pending, body)
    assert caught.value.code == "SECURITY_LEVEL_NOT_MET"


@pytest.mark.parametrize("kind, policy, expected", [
    (LicenseKind.TEMPORARY, LicensePolicy(lease_duration=60), (60, fields.NO_LEASE, fields.KeyDurationType.LEASE)),
    (LicenseKind.TEMPORARY, LicensePolicy(license_duration=90), (fields.NO_LEASE, 90, fields.KeyDurationType.RENTAL)),
    (LicenseKind.TEMPORARY, LicensePolicy(license_duration=90, lease_duration=60),
     (60, 90, fields.KeyDurationType.LEASE_AND_RENTAL)),
    (LicenseKind.PERSISTENT, LicensePolicy(can_persist=True),
     (fields.NO_LEASE, fields.NO_LEASE, fields.KeyDurationType.PERSISTENCE)),
    (LicenseKind.PERSISTENT, LicensePolicy(can_persist=True, rental_duration=100),
     (fields.NO_LEASE, 100, fields.KeyDurationType.PERSISTENCE_AND_RENTAL)),
])
def test_key_duration_types(kind, policy, expected):
    duration = ckc.key_duration(grant_for(kind, policy))
    assert (duration.lease, duration.rental, duration.type) == expected


def test_no_duration_means_no_key_duration_block():
    assert ckc.key_duration(grant_for(policy=LicensePolicy())) is None


def test_answer_shapes_decode_to_the_same_ckc():
    ckc_bytes = bytes(range(64))
    text = base64.b64encode(ckc_bytes).decode()
    assert decode_answer(f"<ckc>{text}</ckc>".encode(), "application/xml") == ckc_bytes
    assert decode_answer(text.encode(), "text/plain") == ckc_bytes
    assert decode_answer(f'{{"ckc": "{text}"}}'.encode(), "application/json") == ckc_bytes
    assert decode_answer(ckc_bytes, "application/octet-stream") == ckc_bytes
    with pytest.raises(CdmError):
        decode_answer(b'{"code": "X"}', "application/json")


@pytest.mark.parametrize("track, robustness, level", [
    (Track.AUDIO, Robustness.SW_SECURE_CRYPTO, fields.SecurityLevel.AUDIO),
    (Track.SD, Robustness.SW_SECURE_CRYPTO, fields.SecurityLevel.BASELINE),
    (Track.HD, Robustness.SW_SECURE_CRYPTO, fields.SecurityLevel.BASELINE),
    (Track.SD, Robustness.HW_SECURE_CRYPTO, fields.SecurityLevel.MAIN),  # e.g. a title rule "SD needs L1"
    (Track.UHD1, Robustness.HW_SECURE_ALL, fields.SecurityLevel.MAIN),
])
def test_each_key_carries_the_level_of_the_requirement_applied(track, robustness, level):
    key = TrackKey(b"\x01" * 16, b"\x02" * 16, track, robustness, Hdcp.NONE)
    assert ckc.security_level(key) is level
