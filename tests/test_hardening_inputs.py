"""Issue 20, defect 1/5: hostile unauthenticated input never gets a 500; it gets the dialect's stable 4xx."""

from __future__ import annotations

import base64
import json

import pytest

from license_server import jsonsafe
from license_server.errors import ERROR_CODE_HEADER, DrmError
from license_server.protocols.fairplay import fields
from license_server.tokens import TOKEN_HEADER
from tests.admin_support import admin_settings, call
from tests.conftest import START
from tests.tokens_support import b64, token

DEEP = b"[" * 20_000 + b"]" * 20_000
DEEP_OBJECT = b"{\"spc\": " + b"[" * 20_000 + b"]" * 20_000 + b"}"


@pytest.fixture
def settings(tmp_path):
    return admin_settings(tmp_path)


def test_bounded_loader_refuses_depth_and_size_and_ignores_brackets_in_strings():
    assert jsonsafe.loads(b'{"a": "[[[[{{{{"}', max_depth=1) == {"a": "[[[[{{{{"}
    for bad in (DEEP, b"[" * 65 + b"]" * 65, b"{bad", b"\xff"):
        with pytest.raises(ValueError):
            jsonsafe.loads(bad)
    with pytest.raises(ValueError):
        jsonsafe.loads(b"[1]" + b" " * 100, max_bytes=50)


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
async def test_fairplay_json_transport_deep_nesting(client, store, body):
    response = await client.post("/fairplay/license", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400 and response.headers[ERROR_CODE_HEADER] == "MALFORMED_CHALLENGE"
    assert store.licenses() == []


@pytest.mark.parametrize("decode", [fields.decode_evidence, fields.DestructionRecord.decode,
                                    fields.InvalidationAck.decode])
def test_spc_json_blocks_deep_nesting(decode):
    with pytest.raises(DrmError) as caught:
        decode(DEEP)
    assert caught.value.code.value == "MALFORMED_CHALLENGE"


async def test_admin_json_body_deep_nesting(client):
    status, _, doc = await call(client, "POST", "/admin/clock", DEEP_OBJECT.replace(b"spc", b"advance"))
    assert status == 400 and doc["error"]["code"] == "ADMIN_REQUEST_INVALID"


async def test_fault_content_matching_deep_nesting(client):
    status, _, _ = await call(client, "POST", "/admin/faults",
                              {"dialect": "clearkey", "action": "status", "http_status": 503, "count": 1,
                               "content_id": "demo-movie"})
    assert status in (200, 201)
    response = await client.post("/clearkey/license", data=DEEP, headers={"Content-Type": "application/json"})
    assert response.status == 400 and response.headers[ERROR_CODE_HEADER] == "MALFORMED_CHALLENGE"


@pytest.mark.parametrize("exp", ["\u00b2\u00b3", "\u0661\u0662\u0663", "\uff11\uff12"])
async def test_presigned_media_url_with_unicode_digits(client, exp):
    response = await client.get("/media/demo-movie/cenc/sd/seg_1.m4s", params={"exp": exp, "sig": "AAAA"})
    assert response.status == 403 and response.headers[ERROR_CODE_HEADER] == "URL_SIGNATURE_INVALID"


def _header_token(header: dict) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(b'{}')}.{b64(b'x')}"


@pytest.mark.parametrize("header", [{"alg": ["ES256"], "kid": "test-es256"}, {"alg": {"a": 1}, "kid": "x"},
                                    {"alg": "ES256", "kid": ["test-es256"]}, {"alg": "ES256", "kid": {"k": 1}}])
async def test_token_header_alg_or_kid_not_a_string(client, widevine, make_device, header):
    status, headers, _, _ = await _acquire_with(widevine, make_device, _header_token(header))
    assert 400 <= status < 500 and headers[ERROR_CODE_HEADER] == "TOKEN_MALFORMED"


async def test_token_header_deeply_nested(client, widevine, make_device):
    deep = b64(b"[" * 3000 + b"]" * 3000)
    status, headers, _, _ = await _acquire_with(widevine, make_device, f"{deep}.{b64(b'{}')}.{b64(b'x')}")
    assert 400 <= status < 500 and headers[ERROR_CODE_HEADER] == "TOKEN_MALFORMED"


async def _acquire_with(widevine, make_device, text: str):
    from device_emulator.cdm.widevine import WidevineCdm

    cdm = WidevineCdm(make_device("L1"))
    pending = cdm.build_challenge("demo-movie", _temporary())
    response = await widevine.client.post("/widevine/license", data=pending.body, headers={TOKEN_HEADER: text})
    return response.status, response.headers, await response.read(), pending


def _temporary():
    from license_server.core.model import LicenseKind

    return LicenseKind.TEMPORARY


@pytest.mark.parametrize("overrides", [
    {"policy": {"persistent": True, "license": 10**20}},
    {"policy": {"persistent": True, "rental": 10**20}},
    {"exp": 10**30, "jti": "once-1"},
    {"nbf": -(10**30)},
    {"policy": {"persistent": "yes"}},
    {"policy": {"persistent": 1}},
    {"device_cap": "2"},
    {"content": "demo-movie"},
])
async def test_token_claims_out_of_range_or_wrong_type(client, widevine, make_device, store, overrides):
    status, headers, _, _ = await _acquire_with(widevine, make_device, token(**overrides))
    assert 400 <= status < 500 and headers[ERROR_CODE_HEADER] == "TOKEN_CLAIMS_INVALID", headers.get(ERROR_CODE_HEADER)
    assert store.licenses() == []


async def test_valid_token_still_grants(client, widevine, make_device):
    status, headers, _, _ = await _acquire_with(widevine, make_device, token(policy={"persistent": True,
                                                                                      "license": "30d"}))
    assert status == 200, headers.get(ERROR_CODE_HEADER)


@pytest.mark.parametrize("encoding", ["x-unknown-42", "utf-9", "bogus"])
async def test_playready_xml_declaration_with_unknown_encoding(client, encoding):
    body = f'<?xml version="1.0" encoding="{encoding}"?><soap:Envelope/>'.encode()
    response = await client.post("/playready/rightsmanager.asmx", data=body,
                                 headers={"Content-Type": "text/xml; charset=utf-8",
                                          "SOAPAction": '"http://schemas.microsoft.com/DRM/2007/03/protocols/'
                                                        'AcquireLicense"'})
    assert response.status < 500 or "Fault" in await response.text()
    assert response.headers[ERROR_CODE_HEADER] == "MALFORMED_CHALLENGE"
    assert response.status != 500 or response.headers[ERROR_CODE_HEADER] != "INTERNAL_ERROR"


_ = base64


@pytest.mark.parametrize("query", ["?cfg=(persist:true,rental:\u00b2)", "?cfg=(rental:\u00b9\u00b2)"])
async def test_cfg_override_with_unicode_digits(client, widevine, make_device, query):
    status, headers, _, _ = await widevine.acquire(make_device("L1"), query=query)
    assert 400 <= status < 500 and headers[ERROR_CODE_HEADER] == "INVALID_POLICY_OVERRIDE"


@pytest.mark.parametrize("cfg", ["(sl:\u00b2\u00b3)", "(cvopl:\u00b2)"])
def test_playready_testcfg_with_unicode_digits(cfg):
    from license_server.protocols.playready import testcfg

    with pytest.raises(DrmError) as caught:
        testcfg.parse_cfg(cfg, now=START)
    assert caught.value.code.value == "INVALID_POLICY_OVERRIDE"


@pytest.mark.parametrize("method, path", [("POST", "/downloads"), ("POST", "/clearkey/license"),
                                          ("PUT", "/admin/rights"), ("POST", "/admin/faults"),
                                          ("PATCH", "/admin/rights/titles/demo-movie")])
async def test_deep_json_on_every_json_endpoint(client, method, path):
    status, headers, _ = await call(client, method, path, DEEP)
    assert 400 <= status < 500 and headers[ERROR_CODE_HEADER] != "INTERNAL_ERROR"
