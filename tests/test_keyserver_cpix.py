"""CPIX 2.3 / SPEKE v2.0 over real HTTP: schema conformance element by element, keys equal to the
Widevine key API's, every DRM system's signalling, key periods, SPEKE's documented refusals."""

from __future__ import annotations

import base64
import re
import uuid

import pytest
from defusedxml import ElementTree as SafeET

from license_server import derived_keys
from license_server.errors import ERROR_CODE_HEADER
from license_server.protocols.playready import wrmheader
from license_server.protocols.widevine import license_protocol_pb2 as pb
from tests.keyserver_support import cenc_request, decode_response, signed_body

CPIX = "urn:dashif:org:cpix"
PSKC = "urn:ietf:params:xml:ns:keyprov:pskc"
SEED = derived_keys.default_seed()
WIDEVINE, PLAYREADY = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed", "9a04f079-9840-4286-ab92-e65be0885f95"
FAIRPLAY, CLEARKEY = "94ce86fb-07ff-4f43-adb8-93d2fa968ca2", "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
UUID = re.compile(r"[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}\Z")
HEADERS = {"X-Speke-Version": "2.0", "Content-Type": "application/xml"}

# The CPIX 2.3 schema (DASH-IF): child sequence, required and allowed attributes of each element we write.
SCHEMA = {
    "CPIX": (["DeliveryDataList", "ContentKeyList", "DRMSystemList", "ContentKeyPeriodList",
              "ContentKeyUsageRuleList", "UpdateHistoryItemList"], set(), {"id", "contentId", "name", "version"}),
    "ContentKeyList": (["ContentKey"], set(), {"id", "updateVersion"}),
    "ContentKey": (["Issuer", "AlgorithmParameters", "KeyProfileId", "KeyReference", "FriendlyName", "Data",
                    "UserId", "Policy", "Extensions"], {"kid"},
                   {"id", "Algorithm", "kid", "explicitIV", "dependsOnKey", "commonEncryptionScheme"}),
    "DRMSystemList": (["DRMSystem"], set(), {"id", "updateVersion"}),
    "DRMSystem": (["PSSH", "ContentProtectionData", "URIExtXKey", "HLSSignalingData",
                   "SmoothStreamingProtectionHeaderData", "HDSSignalingData"], {"systemId", "kid"},
                  {"id", "updateVersion", "systemId", "kid", "name"}),
    "ContentKeyPeriodList": (["ContentKeyPeriod"], set(), {"id", "updateVersion"}),
    "ContentKeyPeriod": ([], set(), {"id", "index", "start", "end"}),
    "ContentKeyUsageRuleList": (["ContentKeyUsageRule"], set(), {"id", "updateVersion"}),
    "ContentKeyUsageRule": (["KeyPeriodFilter", "LabelFilter", "VideoFilter", "AudioFilter", "BitrateFilter"],
                            {"kid"}, {"id", "kid", "intendedTrackType"}),
    "KeyPeriodFilter": ([], {"periodId"}, {"periodId"}),
    "VideoFilter": ([], set(), {"minPixels", "maxPixels", "hdr", "wcg", "minFps", "maxFps"}),
    "AudioFilter": ([], set(), {"minChannels", "maxChannels"}),
}
BASE64_TEXT = {"PSSH", "ContentProtectionData", "URIExtXKey", "HLSSignalingData"}


def local(tag: str) -> tuple[str, str]:
    ns, _, name = tag[1:].partition("}")
    return ns, name


def check_element(element, period_ids: set[str]) -> None:
    ns, name = local(element.tag)
    assert ns == CPIX, element.tag
    if name == "Data":  # pskc:KeyDataType
        (secret,) = list(element)
        assert secret.tag == f"{{{PSKC}}}Secret"
        assert [c.tag for c in secret] == [f"{{{PSKC}}}PlainValue"]
        assert len(base64.b64decode(secret[0].text, validate=True)) == 16
        return
    order, required, allowed = SCHEMA[name]
    assert required <= set(element.attrib), (name, element.attrib)
    assert set(element.attrib) <= allowed, (name, element.attrib)
    for attr in ("kid", "systemId"):
        if attr in element.attrib:
            assert UUID.match(element.get(attr)), element.get(attr)
    positions = [order.index(local(child.tag)[1]) for child in element]  # raises if not allowed here
    assert positions == sorted(positions), (name, [local(c.tag)[1] for c in element])
    if name == "DRMSystem":
        playlists = [c.get("playlist") for c in element if local(c.tag)[1] == "HLSSignalingData"]
        assert len(playlists) <= 2 and len(set(playlists)) == len(playlists) and set(playlists) <= {"media", "master"}
    if name == "KeyPeriodFilter":
        assert element.get("periodId") in period_ids  # xs:IDREF
    for child in element:
        if local(child.tag)[1] in BASE64_TEXT:
            base64.b64decode(child.text, validate=True)
            assert set(child.attrib) <= {"playlist"}
        else:
            check_element(child, period_ids)


def conforms(xml: bytes):
    root = SafeET.fromstring(xml)
    assert xml.startswith(b"<?xml") and root.tag == f"{{{CPIX}}}CPIX" and root.get("version") == "2.3"
    ids = [p.get("id") for p in root.iter(f"{{{CPIX}}}ContentKeyPeriod")]
    assert len(ids) == len(set(ids)) and all(re.match(r"[A-Za-z_][\w.-]*\Z", i) for i in ids)  # xs:ID
    check_element(root, set(ids))
    return root


def speke_request(content_id: str | None = "cpix-movie", tracks=("SD", "AUDIO"), periods=(0, 1, 2),
                  version: str | None = "2.3", scheme: str | None = "cenc",
                  systems=(WIDEVINE, PLAYREADY, FAIRPLAY, CLEARKEY)) -> bytes:
    """An encryptor's SPEKE v2 request: one key per track and period, the encryptor's own KIDs."""
    wanted = [(track, period, uuid.uuid4()) for period in periods for track in tracks]
    attrs = (f' contentId="{content_id}"' if content_id is not None else "") + \
            (f' version="{version}"' if version is not None else "")
    scheme_attr = f' commonEncryptionScheme="{scheme}"' if scheme else ""
    keys = "".join(f'<cpix:ContentKey kid="{kid}"{scheme_attr}/>' for _, _, kid in wanted)
    drm = "".join(f'<cpix:DRMSystem kid="{kid}" systemId="{system}"><cpix:PSSH/><cpix:ContentProtectionData/>'
                  f'<cpix:HLSSignalingData playlist="media"/><cpix:HLSSignalingData playlist="master"/>'
                  f"</cpix:DRMSystem>" for _, _, kid in wanted for system in systems)
    period_list = "".join(f'<cpix:ContentKeyPeriod id="keyPeriod_{p}" index="{p}"/>' for p in periods)
    rules = "".join(f'<cpix:ContentKeyUsageRule kid="{kid}" intendedTrackType="{track}">'
                    f'<cpix:KeyPeriodFilter periodId="keyPeriod_{period}"/>'
                    + ('<cpix:VideoFilter maxPixels="589824"/>' if track != "AUDIO" else "<cpix:AudioFilter/>")
                    + "</cpix:ContentKeyUsageRule>" for track, period, kid in wanted)
    return (f'<?xml version="1.0" encoding="UTF-8"?><cpix:CPIX xmlns:cpix="{CPIX}" xmlns:pskc="{PSKC}"{attrs}>'
            f"<cpix:ContentKeyList>{keys}</cpix:ContentKeyList><cpix:DRMSystemList>{drm}</cpix:DRMSystemList>"
            + (f"<cpix:ContentKeyPeriodList>{period_list}</cpix:ContentKeyPeriodList>" if periods else "")
            + f"<cpix:ContentKeyUsageRuleList>{rules}</cpix:ContentKeyUsageRuleList></cpix:CPIX>").encode()


def keys_of(root) -> dict[bytes, bytes]:
    return {uuid.UUID(k.get("kid")).bytes: base64.b64decode(k.find(f".//{{{PSKC}}}PlainValue").text)
            for k in root.iter(f"{{{CPIX}}}ContentKey")}


async def test_two_tracks_three_periods_give_six_keys_equal_to_the_widevine_api(client):
    response = await client.post("/cpix", data=speke_request(), headers=HEADERS)
    assert response.status == 200, await response.text()
    assert response.content_type == "application/xml" and response.headers["X-Speke-Version"] == "2.0"
    root = conforms(await response.read())
    assert root.get("contentId") == "cpix-movie"
    cpix_keys = keys_of(root)
    assert len(cpix_keys) == 6
    wv = decode_response(await (await client.post("/widevine/cenc/getcontentkey/widevine_test", data=signed_body(
        cenc_request(b"cpix-movie", ["SD", "AUDIO"], first_crypto_period_index=0, crypto_period_count=3)))).read())
    assert cpix_keys == {base64.b64decode(t["key_id"]): base64.b64decode(t["key"]) for t in wv["tracks"]}
    periods = {p.get("id"): int(p.get("index")) for p in root.iter(f"{{{CPIX}}}ContentKeyPeriod")}
    for rule in root.iter(f"{{{CPIX}}}ContentKeyUsageRule"):
        period = periods[rule.find(f"{{{CPIX}}}KeyPeriodFilter").get("periodId")]
        expected = derived_keys.derive(SEED, "cpix-movie", rule.get("intendedTrackType"), period)
        assert uuid.UUID(rule.get("kid")).bytes == expected.kid and cpix_keys[expected.kid] == expected.key


async def test_every_drm_system_carries_its_signalling_for_the_derived_kid(client):
    root = conforms(await (await client.post("/cpix", data=speke_request(periods=(0,)), headers=HEADERS)).read())
    keys = keys_of(root)
    systems = list(root.iter(f"{{{CPIX}}}DRMSystem"))
    assert len(systems) == 8 and {uuid.UUID(s.get("kid")).bytes for s in systems} == set(keys)
    for system in systems:
        kid = uuid.UUID(system.get("kid")).bytes
        found = {local(c.tag)[1]: base64.b64decode(c.text) for c in system}
        hls = [base64.b64decode(c.text).decode() for c in system if local(c.tag)[1] == "HLSSignalingData"]
        assert hls[0].startswith("#EXT-X-KEY:") and hls[1].startswith("#EXT-X-SESSION-KEY:")
        assert f"KEYID=0x{kid.hex()}" in hls[0]
        if system.get("systemId") == WIDEVINE:
            data = pb.WidevinePsshData.FromString(found["PSSH"][32:])
            assert list(data.key_ids) == [kid] and data.content_id == b"cpix-movie"
            assert b"<cenc:pssh" in found["ContentProtectionData"]
        elif system.get("systemId") == PLAYREADY:
            header = wrmheader.parse_wrmheader(wrmheader.parse_pro(wrmheader.pro_from_pssh(found["PSSH"])))
            assert header.kids == (kid,) and wrmheader.checksum_matches(header.keys[0], keys[kid])
            assert b"<mspr:pro" in found["ContentProtectionData"]
        elif system.get("systemId") == CLEARKEY:
            assert found["PSSH"][8] == 1 and found["PSSH"][12:28] == uuid.UUID(CLEARKEY).bytes and kid in found["PSSH"]
        else:
            assert "PSSH" not in found and f'URI="skd://{kid.hex()}"' in hls[0]
            assert "com.apple.streamingkeydelivery" in hls[0]


async def test_get_cpix_document_and_cbcs_and_rotation(client):
    response = await client.get("/cpix/cpix-get?tracks=HD,AUDIO&scheme=cbcs&first_period=4&periods=2")
    assert response.status == 200
    root = conforms(await response.read())
    keys = keys_of(root)
    assert keys == {derived_keys.derive(SEED, "cpix-get", t, p).kid: derived_keys.derive(SEED, "cpix-get", t, p).key
                    for t in ("HD", "AUDIO") for p in (4, 5)}
    assert {k.get("commonEncryptionScheme") for k in root.iter(f"{{{CPIX}}}ContentKey")} == {"cbcs"}
    assert [int(p.get("index")) for p in root.iter(f"{{{CPIX}}}ContentKeyPeriod")] == [4, 5]
    plain = conforms(await (await client.get("/cpix/cpix-get")).read())
    assert {r.get("intendedTrackType") for r in plain.iter(f"{{{CPIX}}}ContentKeyUsageRule")} == \
        {"SD", "HD", "UHD1", "UHD2", "AUDIO"}
    assert plain.find(f"{{{CPIX}}}ContentKeyPeriodList") is None
    # what GET handed out is licensable like any key-service title
    kid = next(iter(keys))
    grant = await client.post("/clearkey/license", json={
        "kids": [base64.urlsafe_b64encode(kid).rstrip(b"=").decode()], "type": "temporary"})
    assert grant.status == 200


REFUSALS = [
    ("no speke version", speke_request(), {"Content-Type": "application/xml"}, 422,
     "KEYSERVER_UNSUPPORTED_VERSION", "Unsupported SPEKE version"),
    ("speke 1.0", speke_request(), {"X-Speke-Version": "1.0"}, 422, "KEYSERVER_UNSUPPORTED_VERSION",
     "Unsupported SPEKE version"),
    ("no content id", speke_request(None), HEADERS, 422, "KEYSERVER_CPIX_CONTENT_ID_MISSING", "Missing CPIX@contentId"),
    ("no cpix version", speke_request(version=None), HEADERS, 422, "KEYSERVER_UNSUPPORTED_VERSION",
     "Missing CPIX@version"),
    ("cpix 2.2", speke_request(version="2.2"), HEADERS, 422, "KEYSERVER_UNSUPPORTED_VERSION",
     "Unsupported CPIX@version"),
    ("no scheme", speke_request(scheme=None), HEADERS, 422, "KEYSERVER_CPIX_INVALID",
     "Missing ContentKey@commonEncryptionScheme for KID"),
    ("unknown track", speke_request(tracks=("SD", "8K")), HEADERS, 422, "KEYSERVER_CPIX_INVALID", "intendedTrackType"),
    ("unknown system", speke_request(systems=("00000000-0000-0000-0000-000000000000",)), HEADERS, 422,
     "KEYSERVER_CPIX_INVALID", "systemId"),
    ("not xml", b"<cpix:CPIX", HEADERS, 400, "KEYSERVER_MALFORMED_REQUEST", "well-formed"),
    ("entities", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', HEADERS, 400,
     "KEYSERVER_MALFORMED_REQUEST", "entities"),
    ("other root", b'<CPIX contentId="x" version="2.3"/>', HEADERS, 400, "KEYSERVER_MALFORMED_REQUEST", "root"),
    ("catalog title", speke_request("demo-movie"), HEADERS, 409, "KEYSERVER_CONTENT_RESERVED", "catalog"),
]


@pytest.mark.parametrize("body,headers,status,code,message", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
async def test_speke_refusals(client, body, headers, status, code, message):
    response = await client.post("/cpix", data=body, headers=headers)
    assert response.status == status and response.headers[ERROR_CODE_HEADER] == code
    assert message in await response.text()


async def test_mixed_schemes_are_refused(client):
    body = speke_request(periods=(0,)).replace(b'commonEncryptionScheme="cenc"/>',
                                               b'commonEncryptionScheme="cbcs"/>', 1)
    response = await client.post("/cpix", data=body, headers=HEADERS)
    assert response.status == 422 and "Non compliant ContentKey@commonEncryptionScheme combination" in \
        await response.text()


@pytest.mark.parametrize("query", ["tracks=SD,8K", "scheme=rot13", "first_period=-1", "first_period=0&periods=500"])
async def test_get_refusals(client, query):
    response = await client.get(f"/cpix/cpix-get?{query}")
    assert 400 <= response.status < 500 and response.headers[ERROR_CODE_HEADER].startswith("KEYSERVER_")
