"""The Widevine common-encryption key API over real HTTP: signing, keys, crypto periods, refusals."""

from __future__ import annotations

import base64

import pytest

from license_server import derived_keys
from license_server.errors import ERROR_CODE_HEADER
from license_server.protocols.widevine import license_protocol_pb2 as pb
from tests.keyserver_support import (
    ALL_TRACKS,
    cenc_request,
    decode_response,
    signed_body,
)

URL = "/widevine/cenc/getcontentkey/widevine_test"
SEED = derived_keys.default_seed()
CID = b"keyserver-movie"


async def fetch(client, body: bytes, url: str = URL):
    response = await client.post(url, data=body, headers={"Content-Type": "application/json"})
    return response, decode_response(await response.read())


def b64(value: str) -> bytes:
    return base64.b64decode(value)


@pytest.mark.parametrize("method,signer", [("aes", "widevine_test"), ("rsa", "rsa_test")])
async def test_signed_request_gets_derived_keys_and_pssh(client, method, signer):
    body = signed_body(cenc_request(CID, protection_scheme="CBCS"), signer=signer, method=method)
    response, answer = await fetch(client, body, f"/widevine/cenc/getcontentkey/{signer}")
    assert response.status == 200, answer
    assert answer["status"] == "OK" and b64(answer["content_id"]) == CID
    assert [t["type"] for t in answer["tracks"]] == ALL_TRACKS
    kids = []
    for track in answer["tracks"]:
        expected = derived_keys.derive(SEED, CID.decode(), track["type"])
        assert b64(track["key_id"]) == expected.kid and b64(track["key"]) == expected.key
        assert "crypto_period_index" not in track
        (pssh,) = track["pssh"]
        assert pssh["drm_type"] == "WIDEVINE"
        data = pb.WidevinePsshData.FromString(b64(pssh["data"]))
        assert data.content_id == CID and data.protection_scheme == 0x63626373
        kids.append(expected.kid)
    assert list(data.key_ids) == kids


async def test_the_vendor_path_without_widevine_prefix_and_the_signer_in_the_body(client):
    for url in ("/cenc/getcontentkey/widevine_test", "/cenc/getcontentkey"):
        response, answer = await fetch(client, signed_body(cenc_request(CID)), url)
        assert response.status == 200 and answer["status"] == "OK"


async def test_crypto_periods_give_one_key_per_period_per_track(client):
    request = cenc_request(CID, ["SD", "AUDIO"], first_crypto_period_index=7, crypto_period_count=3,
                           crypto_period_seconds=4)
    response, answer = await fetch(client, signed_body(request))
    assert response.status == 200
    got = [(t["crypto_period_index"], t["type"]) for t in answer["tracks"]]
    assert got == [(p, t) for p in (7, 8, 9) for t in ("SD", "AUDIO")]
    for track in answer["tracks"]:
        expected = derived_keys.derive(SEED, CID.decode(), track["type"], track["crypto_period_index"])
        assert b64(track["key_id"]) == expected.kid and b64(track["key"]) == expected.key
        data = pb.WidevinePsshData.FromString(b64(track["pssh"][0]["data"]))
        assert len(data.key_ids) == 2 and expected.kid in data.key_ids  # the period's keys only
    assert len({t["key_id"] for t in answer["tracks"]}) == 6


async def test_fetched_keys_are_licensable_and_the_answer_is_the_same_every_time(client):
    _, first = await fetch(client, signed_body(cenc_request(CID, ["SD"])))
    _, again = await fetch(client, signed_body(cenc_request(CID, ["SD"])))
    assert first["tracks"] == again["tracks"]
    kid = base64.urlsafe_b64encode(b64(first["tracks"][0]["key_id"])).rstrip(b"=").decode()
    response = await client.post("/clearkey/license", json={"kids": [kid], "type": "temporary"})
    key = (await response.json())["keys"][0]["k"]
    assert base64.urlsafe_b64decode(key + "==") == b64(first["tracks"][0]["key"])


async def test_a_content_id_that_is_not_printable_text_is_hex_and_out_of_the_pssh(client):
    raw = bytes.fromhex("7465737420636f6e74656e74206964")  # "test content id" (spaces), the tutorial's id
    response, answer = await fetch(client, signed_body(cenc_request(raw, ["SD"])))
    assert response.status == 200
    expected = derived_keys.derive(SEED, raw.hex(), "SD")
    assert b64(answer["tracks"][0]["key_id"]) == expected.kid
    assert not pb.WidevinePsshData.FromString(b64(answer["tracks"][0]["pssh"][0]["data"])).content_id


REFUSALS = [
    ("bad signature", signed_body(cenc_request(CID), signature=b"\x00" * 32), URL, 403, "SIGNATURE_FAILED",
     "KEYSERVER_SIGNATURE_INVALID"),
    ("unsigned", signed_body(cenc_request(CID), signature=b""), URL, 403, "SIGNATURE_FAILED",
     "KEYSERVER_SIGNATURE_INVALID"),
    ("rsa signer, aes signature", signed_body(cenc_request(CID), signer="rsa_test"),
     "/cenc/getcontentkey/rsa_test", 403, "SIGNATURE_FAILED", "KEYSERVER_SIGNATURE_INVALID"),
    ("unknown signer", signed_body(cenc_request(CID), signer="nobody"), "/cenc/getcontentkey/nobody", 403,
     "ACCESS_DENIED", "KEYSERVER_SIGNER_UNKNOWN"),
    ("signer mismatch", signed_body(cenc_request(CID), signer="rsa_test"), URL, 403, "ACCESS_DENIED",
     "KEYSERVER_SIGNER_UNKNOWN"),
    ("body not json", b"{not json", URL, 400, "MALFORMED_REQUEST", "KEYSERVER_MALFORMED_REQUEST"),
    ("body not object", b"[1]", URL, 400, "MALFORMED_REQUEST", "KEYSERVER_MALFORMED_REQUEST"),
    ("request not base64", b'{"request": "***", "signature": "", "signer": "widevine_test"}', URL, 400,
     "MALFORMED_REQUEST", "KEYSERVER_MALFORMED_REQUEST"),
    ("request not json", signed_body(b"\xff\xfe"), URL, 400, "MALFORMED_REQUEST", "KEYSERVER_MALFORMED_REQUEST"),
    ("unknown track", signed_body(cenc_request(CID, ["SD", "8K"])), URL, 400, "TRACK_TYPE_UNKNOWN",
     "KEYSERVER_TRACK_TYPE_UNKNOWN"),
    ("no tracks", signed_body(cenc_request(CID, [])), URL, 400, "TRACK_TYPE_UNKNOWN", "KEYSERVER_TRACK_TYPE_UNKNOWN"),
    ("no content id", signed_body(cenc_request(b"")), URL, 400, "CONTENT_ID_MISSING", "KEYSERVER_CONTENT_ID_MISSING"),
    ("catalog title", signed_body(cenc_request(b"demo-movie")), URL, 409, "ACCESS_DENIED",
     "KEYSERVER_CONTENT_RESERVED"),
    ("other drm", signed_body(cenc_request(CID, drm_types=["PLAYREADY"])), URL, 400, "MALFORMED_REQUEST",
     "KEYSERVER_MALFORMED_REQUEST"),
    ("too many periods", signed_body(cenc_request(CID, first_crypto_period_index=0, crypto_period_count=1000)),
     URL, 400, "MALFORMED_REQUEST", "KEYSERVER_MALFORMED_REQUEST"),
    ("bad scheme", signed_body(cenc_request(CID, protection_scheme="ROT13")), URL, 400, "MALFORMED_REQUEST",
     "KEYSERVER_MALFORMED_REQUEST"),
]


@pytest.mark.parametrize("body,url,status,api_status,code", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
async def test_refusals_keep_the_api_shape_with_our_code(client, body, url, status, api_status, code):
    response, answer = await fetch(client, body, url)
    assert response.status == status
    assert response.headers[ERROR_CODE_HEADER] == code
    assert answer["status"] == api_status and answer["error"]["code"] == code and "tracks" not in answer


async def test_refused_requests_record_nothing(client):
    await fetch(client, signed_body(cenc_request(b"never-signed"), signature=b"\x01" * 32))
    response = await client.post("/clearkey/license", json={
        "kids": [base64.urlsafe_b64encode(derived_keys.derive(SEED, "never-signed", "SD").kid).rstrip(b"=").decode()],
        "type": "temporary"})
    assert response.status == 404
