"""Bad input to /fairplay/license: a clear FairPlay-shaped 4xx with a stable code, nothing stored."""

import base64
import struct

import pytest

from device_emulator.cdm.fairplay import FairPlayCdm
from license_server.crypto import fairplay as fpcrypto
from license_server.errors import ERROR_CODE_HEADER


async def post(client, data, content_type="application/octet-stream", query=""):
    response = await client.post("/fairplay/license" + query, data=data, headers={"Content-Type": content_type})
    body = await response.json()
    assert body["code"] == response.headers[ERROR_CODE_HEADER] and body["status"] == response.status
    assert response.headers["Content-Type"].startswith("application/json")
    return response.status, body["code"], body["message"]


@pytest.fixture
async def spc(fairplay, make_device):
    cdm = FairPlayCdm(make_device("L1"))
    await fairplay.certificate(cdm)
    return cdm


@pytest.mark.parametrize("data, content_type, fragment", [
    (b"", "application/octet-stream", "empty SPC"),
    (b"\x00\x00\x00\x02" + bytes(40), "application/octet-stream", "shorter than its"),
    (b"spc=%%%%", "application/x-www-form-urlencoded", "not base64"),
    (b"assetId=demo-movie", "application/x-www-form-urlencoded", "exactly one spc"),
    (b"{not json", "application/json", "does not parse"),
    (b'{"ckc": "AAAA"}', "application/json", '{"spc"'),
    (b'{"spc": 5}', "application/json", '{"spc"'),
    (b"!!!!", "text/plain", "not base64"),
])
async def test_unparseable_bodies(client, store, data, content_type, fragment):
    status, code, message = await post(client, data, content_type)
    assert (status, code) == (400, "MALFORMED_CHALLENGE") and fragment in message
    assert store.licenses() == [] and store.audit_trail() == []


async def test_wrong_version_and_lengths_in_the_header(client, spc):
    body = spc.build_spc("demo-movie").body
    status, code, message = await post(client, struct.pack(">I", 1) + body[4:])
    assert (status, code) == (400, "MALFORMED_CHALLENGE") and "version 1" in message
    status, code, message = await post(client, body[:-16])
    assert code == "MALFORMED_CHALLENGE" and "length field" in message
    truncated = bytearray(body[:-16])
    truncated[300:304] = struct.pack(">I", len(body) - 304 - 16)
    status, code, message = await post(client, bytes(truncated))
    assert code == "MALFORMED_CHALLENGE"


async def test_spc_for_another_application_certificate(client, spc, keyring):
    other = fpcrypto.issue_app_certificate(keyring.root_key_pem, common_name="someone else", not_before=0,
                                           not_after=2_000_000_000)
    spc.accept_certificate(other)
    status, code, message = await post(client, spc.build_spc("demo-movie").body)
    assert (status, code) == (400, "MALFORMED_CHALLENGE") and "certificate hash" in message


async def test_altered_spc_payload_is_refused(client, spc, store):
    body = bytearray(spc.build_spc("demo-movie").body)
    body[-1] ^= 0x01  # inside the device signature block
    status, code, _ = await post(client, bytes(body))
    assert (status, code) == (403, "SIGNATURE_INVALID")
    body = bytearray(spc.build_spc("demo-movie").body)
    body[400] ^= 0x01  # early payload: garbles the TLLV framing or a signed value
    status, code, _ = await post(client, bytes(body))
    assert code in ("MALFORMED_CHALLENGE", "SIGNATURE_INVALID") and status in (400, 403)
    assert store.licenses() == []


async def test_form_asset_id_must_match_the_spc(client, spc):
    encoded = base64.b64encode(spc.build_spc("demo-movie").body).decode()
    data = f"spc={encoded.replace('+', '%2B').replace('/', '%2F')}&assetId=demo-episode"
    status, code, message = await post(client, data.encode(), "application/x-www-form-urlencoded")
    assert (status, code) == (400, "MALFORMED_CHALLENGE") and "does not match" in message


async def test_form_with_unescaped_plus_signs_still_decodes(fairplay, spc):
    pending = spc.build_spc("demo-episode")
    encoded = base64.b64encode(pending.body).decode()
    response = await fairplay.client.post("/fairplay/license", data=f"spc={encoded}".encode(),
                                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200


@pytest.mark.parametrize("cfg, fragment", [
    ("(color:red)", "unknown key 'color'"),
    ("(hdcp:type7)", "hdcp"),
    ("(lease:soon)", "lease"),
    ("(persist:true)(persist:false)", "one (...) group"),
])
async def test_bad_cfg_is_refused(client, spc, cfg, fragment):
    status, code, message = await post(client, spc.build_spc("demo-movie").body, query=f"?cfg={cfg}")
    assert (status, code) == (400, "INVALID_POLICY_OVERRIDE") and fragment in message


async def test_unknown_content_and_stale_spc(client, spc, clock):
    status, code, _ = await post(client, spc.build_spc("no-such-title").body)
    assert (status, code) == (404, "CONTENT_NOT_FOUND")
    stale = spc.build_spc("demo-movie").body
    clock.advance(3600)
    status, code, _ = await post(client, stale)
    assert (status, code) == (403, "REPLAYED_CHALLENGE")


async def test_oversized_body_is_refused(client):
    status, code, _ = await post(client, b"\x00" * (200 * 1024))
    assert (status, code) == (413, "CHALLENGE_TOO_LARGE")
