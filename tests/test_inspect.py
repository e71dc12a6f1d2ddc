"""The inspector: every message type decodes with its real field names, secrets stay hidden,
garbage is "not a recognised DRM message" and never a crash."""

from __future__ import annotations

import base64
import json
import os
import random

import pytest

from license_server import presign
from license_server.core.model import LicenseKind
from license_server.errors import DrmError, ErrorCode
from license_server.inspect import NOT_RECOGNISED, Context, inspect
from license_server.protocols import clearkey
from license_server.protocols.playready import faults, wrmheader
from license_server.protocols.widevine import codec
from tests.conftest import START
from tests.inspect_support import CONTENT, challenges, first_kid, pssh_boxes
from tests.tokens_support import tampered, token


@pytest.fixture
def context(keyring) -> Context:
    return Context.from_keyring(keyring, url_secret=b"s" * 32, now=START)


@pytest.fixture
def device(make_device):
    return make_device("L1")


def look(data: bytes, context: Context) -> dict:
    document = inspect(data, context, now=START)
    json.dumps(document)  # always JSON-serializable
    return document


def content_key_texts(keyring) -> list[str]:
    texts = []
    for title in keyring.catalog.titles.values():
        for track in title.tracks:
            texts += [track.key.hex(), clearkey.b64url_encode(track.key), base64.b64encode(track.key).decode()]
    assert texts
    return texts


# ------------------------------------------------------------------ challenges

@pytest.mark.parametrize("dialect,fmt", [("widevine", "widevine.license_request"), ("fairplay", "fairplay.spc"),
                                         ("playready", "playready.challenge"), ("clearkey", "clearkey.request")])
def test_each_dialect_challenge_is_recognised(device, keyring, context, dialect, fmt):
    document = look(challenges(device, keyring)[dialect], context)
    assert document["recognised"] and document["format"] == fmt and document["dialect"] == dialect
    assert document["schema"] == 1 and set(document) == {"schema", "recognised", "format", "dialect", "summary",
                                                         "input", "fields", "notes"}


def test_widevine_request_uses_the_protocol_field_names(device, keyring, context):
    fields = look(challenges(device, keyring)["widevine"], context)["fields"]
    request = fields["msg"]["LicenseRequest"]
    assert fields["type"] == "LICENSE_REQUEST"
    assert request["type"] == "NEW" and request["protocol_version"] == "VERSION_2_1"
    assert request["content_id"]["widevine_pssh_data"]["license_type"] == "OFFLINE"
    assert request["content_id"]["widevine_pssh_data"]["pssh_data_decoded"][0]["content_id"] == CONTENT
    assert request["client_id"]["type"] == "DRM_DEVICE_CERTIFICATE"
    assert [c["type"] for c in request["client_id"]["token_chain"]] == ["DEVICE", "DEVICE_MODEL", "ROOT"]
    assert request["client_id"]["attestation"]["verified_boot_state"] == "VERIFIED"


def test_widevine_privacy_mode_client_id_is_decrypted_with_the_service_key(device, keyring, context):
    from device_emulator.cdm.widevine import WidevineCdm

    cdm = WidevineCdm(device)
    cdm.accept_service_certificate(codec.build_service_certificate(keyring.service_certificate))
    body = cdm.build_challenge(CONTENT, LicenseKind.TEMPORARY, privacy=True).body
    request = look(body, context)["fields"]["msg"]["LicenseRequest"]
    encrypted = request["encrypted_client_id"]
    assert "not shown" in encrypted["encrypted_privacy_key"] and "not shown" in encrypted["encrypted_client_id"]
    assert encrypted["decrypted"]["type"] == "DRM_DEVICE_CERTIFICATE"
    assert look(body, Context())["recognised"]  # without the key: still recognised, client id stays sealed


def test_fairplay_spc_tags_have_public_names_and_secrets_are_hidden(device, keyring, context):
    fields = look(challenges(device, keyring)["fairplay"], context)["fields"]
    by_name = {block["name"]: block for block in fields["payload"]}
    for public in ("SESSION_KEY_R1", "ANTI_REPLAY_SEED", "R2", "ASSET_ID", "CAPABILITIES", "MEDIA_PLAYBACK_STATE"):
        assert by_name[public]["public"] is True
    assert by_name["SESSION_KEY_R1"]["tag"] == "0x3d1a10b8bffac2ec"
    assert "not shown" in by_name["SESSION_KEY_R1"]["value"]
    assert by_name["ASSET_ID"]["value"] == CONTENT
    assert by_name["EMU_ATTESTATION"]["public"] is False and by_name["EMU_ATTESTATION"]["value"]["from_tee"] is True
    assert "not shown" in fields["encrypted_spc_key"]


def test_fairplay_spc_without_the_app_key_shows_the_container_only(device, keyring):
    document = look(challenges(device, keyring)["fairplay"], Context())
    assert document["format"] == "fairplay.spc" and "payload" not in document["fields"]
    assert document["fields"]["version"] == 2


def test_playready_challenge_shows_header_chain_and_evidence(device, keyring, context):
    fields = look(challenges(device, keyring)["playready"], context)["fields"]
    assert fields["wrmheader"]["version"].startswith("4.")
    assert first_kid(keyring).hex() in [k["kid"] for k in fields["wrmheader"]["keys"]]
    assert fields["device_certificate_chain"]["certificates"][0]["security_level"] in (150, 2000, 3000)
    assert fields["device_attestation"]["bootloader_locked"] is True


def test_clearkey_request_and_release(keyring, context):
    kid = first_kid(keyring)
    request = look(clearkey.build_license_request([kid], clearkey.SessionType.PERSISTENT_LICENSE), context)
    assert request["fields"] == {"kids": [kid.hex()], "type": "persistent-license"}
    release = look(clearkey.build_release([kid]), context)
    assert release["format"] == "clearkey.release" and release["fields"]["kids"] == [kid.hex()]


# --------------------------------------------------------------------- answers

async def test_widevine_license_error_and_service_certificate(widevine, device, keyring, context):
    status, _, _, _ = await widevine.acquire(device, CONTENT)
    assert status == 200
    _, _, body = await widevine.post(device_cdm_challenge(device))
    lic = look(body, context)
    assert lic["format"] == "widevine.license"
    license_fields = lic["fields"]["msg"]["License"]
    assert license_fields["policy"]["can_play"] is True and license_fields["id"]["type"] == "STREAMING"
    assert all("not shown" in key["key"] for key in license_fields["key"])
    assert "not shown" in lic["fields"]["session_key"]
    assert not any(text in json.dumps(lic) for text in content_key_texts(keyring))
    error = look(codec.build_error(DrmError(ErrorCode.DEVICE_ROOTED)), context)
    assert error["format"] == "widevine.error" and error["fields"]["msg"]["LicenseError"]["emulator_error_code"] \
        == "DEVICE_ROOTED"
    certificate = look(codec.build_service_certificate(keyring.service_certificate), context)
    assert certificate["format"] == "widevine.service_certificate"
    assert certificate["fields"]["msg"]["SignedDrmCertificate"][0]["type"] == "SERVICE"
    assert look(codec.SERVICE_CERTIFICATE_REQUEST, context)["format"] == "widevine.service_certificate_request"


def device_cdm_challenge(device) -> bytes:
    from device_emulator.cdm.widevine import WidevineCdm

    return WidevineCdm(device).build_challenge(CONTENT, LicenseKind.TEMPORARY).body


async def test_fairplay_ckc_is_recognised_and_stays_sealed(client, device, keyring, context):
    spc = challenges(device, keyring)["fairplay"]
    response = await client.post("/fairplay/license", data=spc, headers={"Content-Type": "application/octet-stream",
                                                                       "Accept": "application/octet-stream"})
    ckc = await response.read()
    assert response.status == 200
    for shape in (ckc, base64.b64encode(ckc), f"<ckc>{base64.b64encode(ckc).decode()}</ckc>".encode(),
                  json.dumps({"ckc": base64.b64encode(ckc).decode()}).encode()):
        document = look(shape, context)
        assert document["format"] == "fairplay.ckc" and "not shown" in document["fields"]["payload"]
    assert look(json.dumps({"spc": base64.b64encode(spc).decode()}).encode(), context)["format"] == "fairplay.spc"


async def test_playready_license_response_xmr_and_fault(client, device, keyring, context):
    body = challenges(device, keyring)["playready"]
    response = await client.post("/playready/rightsmanager.asmx", data=body, headers={
        "Content-Type": "text/xml", "SOAPAction": '"http://schemas.microsoft.com/DRM/2007/03/protocols/AcquireLicense"'})
    answer = await response.read()
    assert response.status == 200, answer
    document = look(answer, context)
    assert document["format"] == "playready.license_response"
    xmr_fields = document["fields"]["licenses"][0]
    assert xmr_fields["min_security_level"] in (150, 2000, 3000) and xmr_fields["keys"]
    assert all("not shown" in key["encrypted_key"] for key in xmr_fields["keys"])
    assert not any(text in json.dumps(document) for text in content_key_texts(keyring))
    from license_server.protocols.playready import soap

    raw_xmr = soap.parse_license_response(answer).licenses[0]
    assert look(raw_xmr, context)["format"] == "playready.xmr"
    assert look(base64.b64encode(raw_xmr), context)["format"] == "playready.xmr"
    fault = look(faults.build_fault(DrmError(ErrorCode.DEVICE_REVOKED)), context)
    assert fault["format"] == "playready.fault" and fault["fields"]["emulator_error_code"] == "DEVICE_REVOKED"


def test_playready_wrmheader_and_pro(device, keyring, context):
    from device_emulator.cdm.playready import PlayReadyCdm

    pro = PlayReadyCdm(device, keyring).content_header(CONTENT)
    header_xml = wrmheader.parse_pro(pro)
    assert look(header_xml.encode(), context)["format"] == "playready.wrmheader"
    document = look(pro, context)
    assert document["format"] == "playready.pro" and document["fields"]["wrmheader"]["keys"]
    assert look(base64.b64encode(pro), context)["format"] == "playready.pro"


async def test_clearkey_answer_shows_its_plain_keys(client, keyring, context):
    kid = first_kid(keyring)
    response = await client.post("/clearkey/license", data=clearkey.build_license_request([kid]))
    document = look(await response.read(), context)
    assert document["format"] == "clearkey.license"
    title = keyring.catalog.title(CONTENT)
    assert document["fields"]["keys"][0]["k_hex"] == title.track_for(kid).key.hex()  # by design


# ------------------------------------------------------------------------ PSSH

@pytest.mark.parametrize("system", ["widevine", "playready", "clearkey", "fairplay"])
def test_pssh_of_every_system(device, keyring, context, system):
    box = pssh_boxes(device, keyring)[system]
    for shape in (box, base64.b64encode(box), box.hex().encode()):
        document = look(shape, context)
        assert document["format"] == "pssh" and document["dialect"] == system
    fields = document["fields"]["boxes"][0]
    if system == "widevine":
        assert fields["data"]["WidevinePsshData"]["content_id"] == CONTENT
    if system == "playready":
        assert fields["data"]["PlayReadyObject"]["wrmheader"]["keys"]
    if system in ("clearkey", "fairplay"):
        assert fields["version"] == 1 and fields["key_ids"] == [first_kid(keyring).hex()]


def test_several_pssh_boxes_back_to_back(device, keyring, context):
    document = look(b"".join(pssh_boxes(device, keyring).values()), context)
    assert len(document["fields"]["boxes"]) == 4 and document["dialect"] is None


# ---------------------------------------------------- tokens and presigned URLs

def test_entitlement_token_header_claims_and_verification(context):
    good = look(token().encode(), context)
    assert good["format"] == "entitlement_token"
    assert good["fields"]["header"]["alg"] == "ES256" and good["fields"]["claims"]["sub"] == "alice"
    assert good["fields"]["verification"]["verified"] is True
    forged = look(tampered(token()).encode(), context)["fields"]["verification"]
    assert forged == {"verified": False, "code": "TOKEN_SIGNATURE_INVALID", "reason": forged["reason"]}
    expired = look(token(exp=START - 3600).encode(), context)["fields"]["verification"]
    assert expired["code"] == "TOKEN_EXPIRED"
    assert look(token().encode(), Context())["fields"]["verification"]["verified"] is None


def test_presigned_url_verification(context):
    secret = context.url_secret
    url = presign.sign(secret, "/media/demo-movie/cenc/sd/seg_1.m4s", START + 60).url
    ok = look(url.encode(), context)
    assert ok["format"] == "presigned_url" and ok["fields"]["content_id"] == "demo-movie"
    assert ok["fields"]["verification"]["verified"] is True and ok["fields"]["expires_in_seconds"] == 60
    late = presign.sign(secret, "/media/demo-movie/cenc/sd/seg_1.m4s", START - 1).url
    assert look(late.encode(), context)["fields"]["verification"]["code"] == "URL_EXPIRED"
    forged = url.replace("seg_1", "seg_2")
    assert look(forged.encode(), context)["fields"]["verification"]["code"] == "URL_SIGNATURE_INVALID"
    assert look(("http://127.0.0.1:8080" + url).encode(), context)["fields"]["host"] == "127.0.0.1:8080"


# ---------------------------------------------------------------------- garbage

@pytest.mark.parametrize("garbage", [b"", b" ", b"hello world", b"{}", b"[1,2]", b"<html/>", b"<a", b"{\"kids\": 3}",
                                     b"a.b.c", b"QUJD", b"00", b"\x00" * 64, b"\xff" * 1000, b"pssh" * 10,
                                     b"XMR\x00\x00\x00\x00\x03", b"/media/x?exp=1"])
def test_garbage_is_not_a_recognised_drm_message(context, garbage):
    document = look(garbage, context)
    assert document["recognised"] is False and document["summary"] == NOT_RECOGNISED and document["fields"] == {}


def test_random_and_truncated_messages_never_crash(device, keyring, context):
    rng = random.Random(16)
    samples = [*challenges(device, keyring).values(), *pssh_boxes(device, keyring).values()]
    for _ in range(300):
        look(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 400))), context)
    for sample in samples:
        for cut in (1, 7, 16, 33, len(sample) // 2, len(sample) - 1):
            look(sample[:cut], context)
        flipped = bytearray(sample)
        for _ in range(20):
            flipped[rng.randrange(len(flipped))] ^= 0xFF
            look(bytes(flipped), context)


def test_oversized_input_is_refused_politely(context):
    document = look(os.urandom(16) * (70 * 1024), context)
    assert document["recognised"] is False and "larger than" in document["notes"][0]


@pytest.mark.parametrize("kind", ["secure_stop", "secure_delete"])
def test_playready_reports_and_their_answers(device, keyring, context, kind):
    from device_emulator.cdm.playready import PlayReadyCdm
    from license_server.protocols.playready import reports

    cdm, kid, license_id = PlayReadyCdm(device, keyring), first_kid(keyring), "ab" * 16
    if kind == "secure_stop":
        pending = cdm.build_secure_stop(license_id, (kid,), start=START - 60, stop=START)
        operation = reports.SECURE_STOP
    else:
        pending = cdm.build_secure_delete(license_id, (kid,))
        operation = reports.SECURE_DELETE
    document = look(pending.body, context)
    assert document["format"] == f"playready.{kind}" and document["fields"]["license_id"] == license_id
    assert document["fields"]["kids"] == [kid.hex()]
    assert document["fields"]["certificate_chain"]["certificates"][0]["certificate_type"] == "DEVICE (2)"
    answer = reports.build_answer(reports.ReportAnswer(operation, license_id, b"n" * 16, "recorded"))
    decoded = look(answer, context)
    assert decoded["format"] == f"playready.{kind}_answer" and decoded["fields"]["status"] == "recorded"


def test_cpix_document_lists_keys_and_systems_without_key_values(device, keyring, context):
    kid = first_kid(keyring)
    key = keyring.catalog.title(CONTENT).track_for(kid).key
    box = pssh_boxes(device, keyring)["widevine"]
    kid_uuid = str(__import__("uuid").UUID(bytes=kid))
    document = f"""<?xml version="1.0" encoding="UTF-8"?>
<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" contentId="{CONTENT}">
  <cpix:ContentKeyList>
    <cpix:ContentKey kid="{kid_uuid}" commonEncryptionScheme="cenc">
      <cpix:Data><pskc:Secret><pskc:PlainValue>{base64.b64encode(key).decode()}</pskc:PlainValue></pskc:Secret></cpix:Data>
    </cpix:ContentKey>
  </cpix:ContentKeyList>
  <cpix:DRMSystemList>
    <cpix:DRMSystem kid="{kid_uuid}" systemId="edef8ba9-79d6-4ace-a3c8-27dcd51d21ed">
      <cpix:PSSH>{base64.b64encode(box).decode()}</cpix:PSSH>
    </cpix:DRMSystem>
  </cpix:DRMSystemList>
</cpix:CPIX>""".encode()
    decoded = look(document, context)
    assert decoded["format"] == "cpix" and decoded["fields"]["attributes"]["contentId"] == CONTENT
    assert decoded["fields"]["ContentKeyList"][0]["kid"] == kid_uuid
    assert "not shown" in decoded["fields"]["ContentKeyList"][0]["Data"]
    assert decoded["fields"]["DRMSystemList"][0]["PSSH"][0]["system"] == "Widevine"
    text = json.dumps(decoded)
    assert base64.b64encode(key).decode() not in text and key.hex() not in text
