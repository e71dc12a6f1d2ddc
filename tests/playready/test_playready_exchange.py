"""The PlayReady-style license exchange over real HTTP (aiohttp test server):
acquisition, cfg= shaping, faults, device-side binding and replay checks."""

from __future__ import annotations

import base64
import re

from device_emulator.cdm.playready import PlayReadyCdm
from device_emulator.cdm.widevine import CdmError
from license_server import crypto
from license_server.core.model import LicenseKind
from license_server.crypto import elgamal
from license_server.protocols.playready import SL150, SL2000, SL3000, challenge, soap, xmr

PERSISTENT = LicenseKind.PERSISTENT


def _xmr_of(reply) -> xmr.XmrLicense:
    return xmr.decode(soap.parse_license_response(reply.body).licenses[0]).license


def _assert_fault(reply, code: str, status: int) -> None:
    assert reply.status == 500
    assert reply.code == code
    fault = reply.fault
    assert fault is not None and fault.status_code == status and fault.error_code == code


async def test_temporary_license_is_bound_to_the_request_nonce(playready, make_device, store):
    device = make_device("L1")
    reply, loaded, pending = await playready.acquire(device)
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/xml")
    assert not isinstance(loaded, CdmError), loaded
    lic = loaded.license
    assert not lic.persistent
    assert lic.min_security_level == SL3000  # HD and UHD keys need hardware
    assert {k.track for k in loaded.keys} == {"AUDIO", "SD", "HD", "UHD1"}
    assert lic.platform_verification == "HARDWARE_VERIFIED"
    response = soap.parse_license_response(reply.body)
    assert response.license_nonce == pending.license_nonce and response.transaction_id is None
    assert len(response.licenses) == 4  # one XMR license per content key, sharing the rights id
    assert {xmr.decode(one).license.rights_id.hex() for one in response.licenses} == {loaded.license_id}
    assert store.license(loaded.license_id).kind == "temporary"
    assert loaded.policy()["license_duration"] == 86400


async def test_persist_and_firstexp_give_a_persistent_license_expiring_60s_after_first_play(
        playready, make_device, store):
    device = make_device("L1")
    reply, loaded, pending = await playready.acquire(device, query="?cfg=(persist:true,firstexp:60)")
    assert not isinstance(loaded, CdmError), loaded
    lic = _xmr_of(reply)
    assert lic.persistent and lic.expire_after_first_play == 60
    response = soap.parse_license_response(reply.body)
    assert response.license_nonce == pending.license_nonce and response.transaction_id == lic.rights_id
    assert loaded.policy()["playback_duration"] == 60 and loaded.policy()["can_persist"]
    record = store.license(loaded.license_id)
    assert record.kind == "persistent" and record.policy["playback_duration"] == 60


async def test_all_header_versions_are_served(playready, make_device):
    device = make_device("L1")
    for version in ("4.0.0.0", "4.1.0.0", "4.2.0.0", "4.3.0.0"):
        reply, loaded, _ = await playready.acquire(device, header_version=version)
        assert not isinstance(loaded, CdmError), (version, loaded)
        expected = 1 if version in ("4.0.0.0", "4.1.0.0") else 4
        assert len(loaded.keys) == expected, version


async def test_sl3000_content_is_refused_to_an_sl2000_device(playready, make_device, store):
    device = make_device("L3")
    reply, outcome, _ = await playready.acquire(device, query="?cfg=(sl:3000)")
    _assert_fault(reply, "SECURITY_LEVEL_TOO_LOW", 0x8004A004)
    assert isinstance(outcome, CdmError) and outcome.code == "SECURITY_LEVEL_TOO_LOW"
    assert store.licenses(system="playready") == []
    reply, loaded, _ = await playready.acquire(device)  # default: software keys, SL150 minimum
    assert not isinstance(loaded, CdmError) and {k.track for k in loaded.keys} == {"AUDIO", "SD"}
    assert loaded.license.min_security_level == SL150


async def test_sl150_test_device(playready, make_device):
    device = make_device("L3")
    device.record.extra["playready_model"] = "emulated-test-sl150"
    device.save()
    cdm = playready.cdm(device)
    assert cdm.security_level == SL150
    reply, _, _ = await playready.acquire(device, query="?cfg=(sl:2000)", cdm=cdm)
    _assert_fault(reply, "SECURITY_LEVEL_TOO_LOW", 0x8004A004)
    reply, loaded, _ = await playready.acquire(device, cdm=cdm)
    assert not isinstance(loaded, CdmError)


async def test_device_refuses_a_license_above_its_security_level(playready, make_device):
    device = make_device("L3")
    cdm = playready.cdm(device)
    pending = cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY)
    rights = crypto.random_bytes(16)
    device_key = cdm.identity.holder.encryption_key[1:]

    def response(level: int) -> bytes:
        integrity, wrapped = elgamal.encrypt_key_pair(device_key, None, bytes(16))
        key = xmr.ContentKey(bytes(16), "AESCTR", "SD", 1, 0, wrapped)
        data = xmr.encode(xmr.XmrLicense(rights, 0, False, level, (key,), device_key), integrity)
        return soap.build_license_response([data], response_id=bytes(16), license_nonce=pending.license_nonce,
                                           binding=soap.nonce_binding(integrity, pending.license_nonce, data))

    try:
        cdm.process_license(pending, response(SL3000))
        raise AssertionError("accepted")
    except CdmError as exc:
        assert exc.code == "SECURITY_LEVEL_TOO_LOW"
    assert cdm.process_license(pending, response(SL2000)).keys


async def test_replayed_license_responses_are_rejected_by_the_device(playready, make_device):
    device = make_device("L1")
    cdm = playready.cdm(device)
    for query, kind in (("", LicenseKind.TEMPORARY), ("?cfg=(persist:true)", PERSISTENT)):
        first = cdm.build_challenge("demo-movie", kind)
        reply = await playready.post(first.body, query=query)
        assert reply.status == 200
        second = cdm.build_challenge("demo-movie", kind)
        try:
            cdm.process_license(second, reply.body)
            raise AssertionError("replayed response accepted")
        except CdmError as exc:
            assert exc.code == "LICENSE_MISMATCH"
        assert cdm.process_license(first, reply.body).license_id
    # a persistent response whose LicenseNonce was rewritten to the new request's is still refused
    first, second = (cdm.build_challenge("demo-movie", PERSISTENT) for _ in range(2))
    reply = await playready.post(first.body, query="?cfg=(persist:true)")
    forged = reply.body.replace(base64.b64encode(first.license_nonce), base64.b64encode(second.license_nonce))
    try:
        cdm.process_license(second, forged)
        raise AssertionError("forged nonce accepted")
    except CdmError as exc:
        assert exc.code == "LICENSE_MISMATCH"


async def test_a_license_does_not_load_on_another_device(playready, make_device):
    one, other = make_device("L1"), make_device("L1")
    reply, loaded, _ = await playready.acquire(one, query="?cfg=(persist:true)")
    assert not isinstance(loaded, CdmError)
    data = soap.parse_license_response(reply.body).licenses[0]
    try:
        playready.cdm(other)._load(data)
        raise AssertionError("loaded on another device")
    except CdmError as exc:
        assert exc.code == "LICENSE_NOT_BOUND"


async def test_errorcode_and_revoked_hooks(playready, make_device, store):
    device = make_device("L1")
    reply, outcome, _ = await playready.acquire(device, query="?cfg=(errorcode:0x8004c065)")
    _assert_fault(reply, "DEVICE_REVOKED", 0x8004C065)
    assert b"<StatusCode>0x8004c065</StatusCode>" in reply.body and b"faultcode>soap:Server<" in reply.body
    reply, _, _ = await playready.acquire(device, query="?cfg=(errorcode:8004C600)")
    _assert_fault(reply, "INTERNAL_ERROR", 0x8004C600)
    reply, _, _ = await playready.acquire(device, query="?cfg=(errorcode:0x8004C602)")  # the stream limit's code
    _assert_fault(reply, "STREAM_LIMIT_REACHED", 0x8004C602)
    assert b"DRM_E_SERVER_DEVICE_LIMIT_REACHED" in reply.body
    reply, _, _ = await playready.acquire(device, query="?cfg=(errorcode:0x8004C603)")  # public, none of ours
    _assert_fault(reply, "INJECTED_FAULT", 0x8004C603)
    assert b"DRM_E_SERVER_INDIV_REQUIRED" in reply.body
    reply, outcome, _ = await playready.acquire(device, query="?cfg=(revoked:true)")
    _assert_fault(reply, "DEVICE_REVOKED", 0x8004C065)
    assert isinstance(outcome, CdmError) and outcome.code == "DEVICE_REVOKED"
    assert store.licenses(system="playready") == []


async def test_unknown_cfg_keys_are_named_in_the_fault(playready, make_device):
    reply, _, _ = await playready.acquire(make_device("L1"), query="?cfg=(persist:true,colour:blue)")
    _assert_fault(reply, "INVALID_POLICY_OVERRIDE", 0x8004C604)
    assert b"'colour'" in reply.body


async def test_msg_clientinfo_echoes_the_verified_certificate(playready, make_device, store):
    device = make_device("L3")
    reply, outcome, _ = await playready.acquire(device, query="?cfg=(msg:clientinfo)")
    assert reply.status == 200
    info = soap.parse_license_response(reply.body).client_info
    assert info["DeviceID"] == device.device_id and info["Model"] == "emulated-phone-l3"
    assert info["CertificateSecurityLevel"] == "2000" and info["PlatformVerification"] == "SOFTWARE_VERIFIED"
    assert isinstance(outcome, CdmError) and outcome.code == "NO_LICENSE"
    assert store.licenses(system="playready") == []


async def test_kid_and_contentkey_shape_the_license(playready, make_device, keyring):
    device = make_device("L3")
    sd = keyring.catalog.title("demo-movie").track_for(bytes.fromhex("9d58c641af0241d95c2a2fd59c7fea28"))
    reply, loaded, _ = await playready.acquire(device, query=f"?cfg=(kid:{sd.kid.hex()},ckt:aescbc)")
    assert [k.kid for k in loaded.keys] == [sd.kid] and loaded.license.keys[0].cipher == "AESCBC"
    cdm = playready.cdm(device)
    custom_kid, custom_key = bytes(range(16)), bytes(range(16, 32))
    reply, loaded, _ = await playready.acquire(
        device, query=f"?cfg=(kid:{custom_kid.hex()},contentkey:{custom_key.hex()})", cdm=cdm)
    assert cdm.export_content_keys(loaded) == {custom_kid: custom_key}


async def test_compromised_devices_are_refused_with_their_codes(playready, make_device):
    for flags, code in (({"rooted": True}, "DEVICE_ROOTED"), ({"tampered_app": True}, "APP_NOT_GENUINE"),
                        ({"bootloader_unlocked": True}, "BOOTLOADER_UNLOCKED")):
        reply, outcome, _ = await playready.acquire(make_device("L1", **flags))
        assert reply.status == 500 and reply.code == code, (flags, reply.code)
        assert isinstance(outcome, CdmError) and outcome.code == code


async def test_tampered_challenges_are_refused(playready, make_device):
    device = make_device("L1")
    cdm = playready.cdm(device)
    pending = cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY)
    time_tag = re.search(rb"<ClientTime>(\d+)</ClientTime>", pending.body)
    tampered = pending.body.replace(time_tag.group(0), b"<ClientTime>%d</ClientTime>" % (int(time_tag.group(1)) + 1))
    reply = await playready.post(tampered)
    _assert_fault(reply, "MALFORMED_CHALLENGE", 0x8004C601)  # the DigestValue no longer matches
    la = re.search(rb"<LA .*</LA>", tampered).group(0)
    old_digest = re.search(rb"<DigestValue>([^<]+)</DigestValue>", tampered).group(1)
    redigested = tampered.replace(old_digest, base64.b64encode(crypto.sha256(la)))
    reply = await playready.post(redigested)
    _assert_fault(reply, "SIGNATURE_INVALID", 0x80040E8A)
    reply = await playready.post(pending.body)
    assert reply.status == 200
    reply = await playready.post(pending.body)
    _assert_fault(reply, "REPLAYED_CHALLENGE", 0x8004C01C)


async def test_soap_action_must_match_the_operation(playready, make_device):
    pending = playready.cdm(make_device("L1")).build_challenge("demo-movie", LicenseKind.TEMPORARY)
    reply = await playready.post(pending.body, operation="AcknowledgeLicense")
    _assert_fault(reply, "MALFORMED_CHALLENGE", 0x8004C601)
    reply = await playready.post(pending.body, action='"urn:something-else"')
    _assert_fault(reply, "UNSUPPORTED_REQUEST", 0x8004C604)
    reply = await playready.post(pending.body, action="")
    assert reply.status == 500  # an empty SOAPAction is not a PlayReady action
    reply = await playready.post(soap.envelope('<Renew xmlns="urn:x"/>'), operation="Renew")
    _assert_fault(reply, "UNSUPPORTED_REQUEST", 0x8004C604)


def test_cdm_challenge_carries_evidence_bound_to_the_nonce(make_device, keyring):
    device = make_device("L1")
    cdm = PlayReadyCdm(device, keyring)
    pending = cdm.build_challenge("demo-episode", PERSISTENT)
    parsed = challenge.parse_license_challenge(soap.parse_operation(pending.body), pending.body,
                                               server_key_pem=keyring.playready.server_key_pem)
    assert parsed.la_version == "5" and parsed.custom_data == soap.PERSISTENT_HINT
    assert parsed.challenge.custom_data == soap.PERSISTENT_HINT  # surfaced to the neutral pipeline
    assert b"DeviceAttestation" not in pending.body  # the evidence travels inside EncryptedData
    assert parsed.challenge.license_kind is PERSISTENT
    assert parsed.challenge.request_id == pending.license_nonce
    assert parsed.challenge.device.evidence.from_tee
    assert parsed.header.version == "4.3.0.0" and len(parsed.header.kids) == 3
    assert (device.directory / "playready" / "device_key.sealed").exists()
    assert not (device.directory / "playready" / "device_key.pem").exists()


async def test_sl2000_lets_a_software_device_persist_and_default_policy_does_not(playready, make_device):
    device = make_device("L3")
    reply, outcome, _ = await playready.acquire(device, kind=PERSISTENT, query="?cfg=(persist:true)")
    assert reply.code == "SECURITY_LEVEL_TOO_LOW" and isinstance(outcome, CdmError)
    reply, loaded, _ = await playready.acquire(device, kind=PERSISTENT, query="?cfg=(persist:true,sl:2000)")
    assert not isinstance(loaded, CdmError), loaded
    assert loaded.license.persistent and loaded.license.min_security_level == SL2000


async def test_dates_realtime_and_opls_reach_the_xmr(playready, make_device, clock):
    device = make_device("L1")
    reply, loaded, _ = await playready.acquire(
        device, query="?cfg=(begindate:20270115,enddate:20270116080000,realtime:true,ucvopl:300,avopl:150)")
    assert not isinstance(loaded, CdmError), loaded
    lic = loaded.license
    assert (lic.begin, lic.end, lic.real_time_expiration) == (1_799_971_200, clock.now() + 86400, True)
    assert lic.output_protection == xmr.OutputProtection(0, 300, 150, 0, 0)
    assert loaded.policy()["license_duration"] == 86400  # end - issue date: the window ends at the end date
    assert (loaded.license_start, loaded.not_before) == (clock.now(), 1_799_971_200)
