"""``/clearkey/license`` over real HTTP: grants, every refusal, release, CORS."""

from __future__ import annotations

import json

import pytest

from license_server.errors import ERROR_CODE_HEADER
from license_server.protocols import clearkey
from license_server.revocations import RevocationList

URL = "/clearkey/license"
ORIGIN = "http://player.example"


def kid_of(keyring, content_id: str, track: str) -> bytes:
    return next(t.kid for t in keyring.catalog.title(content_id).tracks if t.track.value == track)


def key_of(keyring, content_id: str, track: str) -> bytes:
    return next(t.key for t in keyring.catalog.title(content_id).tracks if t.track.value == track)


async def post(client, payload, **headers):
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = await client.post(URL, data=data,
                                 headers={"Origin": ORIGIN, "Content-Type": "application/json", **headers})
    return response, await response.read()


async def assert_refused(client, payload, status: int, code: str, store=None):
    before = store.counts()["licenses"] if store else None
    response, raw = await post(client, payload)
    assert response.status == status, raw
    assert response.headers[ERROR_CODE_HEADER] == code
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert ERROR_CODE_HEADER in response.headers["Access-Control-Expose-Headers"]
    assert response.content_type == "application/json"
    doc = json.loads(raw)
    assert doc["error"]["code"] == code and doc["error"]["message"]
    if store is not None:
        assert store.counts()["licenses"] == before
    return doc


# ---------------------------------------------------------------- grants

async def test_temporary_license_returns_the_requested_keys(client, keyring, store):
    kids = [kid_of(keyring, "demo-movie", t) for t in ("AUDIO", "SD", "HD")]
    response, raw = await post(client, clearkey.build_license_request(kids))
    assert response.status == 200, raw
    assert response.content_type == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    doc = json.loads(raw)
    assert doc["type"] == "temporary" and b"=" not in raw
    assert [k["kty"] for k in doc["keys"]] == ["oct"] * 3
    assert clearkey.parse_license(raw) == {kid: key_of(keyring, "demo-movie", t)
                                            for kid, t in zip(kids, ("AUDIO", "SD", "HD"))}
    [record] = store.licenses(system="clearkey")
    assert record.device_id is None and record.kind == "temporary" and record.content_id == "demo-movie"
    assert record.tracks == ["AUDIO", "SD", "HD"] and record.state == "issued"


async def test_only_the_requested_kids_are_answered(client, keyring):
    sd = kid_of(keyring, "demo-episode", "SD")
    _, raw = await post(client, {"kids": [clearkey.b64url_encode(sd)], "type": "temporary"})
    assert list(clearkey.parse_license(raw)) == [sd]


async def test_persistent_license_for_a_downloadable_title(client, keyring, store):
    kid = kid_of(keyring, "demo-movie", "SD")
    response, raw = await post(client, clearkey.build_license_request([kid], clearkey.SessionType.PERSISTENT_LICENSE))
    assert response.status == 200, raw
    assert json.loads(raw)["type"] == "persistent-license"
    assert store.licenses(system="clearkey")[0].kind == "persistent"


async def test_each_request_is_recorded_separately(client, keyring, store):
    body = clearkey.build_license_request([kid_of(keyring, "demo-movie", "SD")])
    for _ in range(2):
        response, _ = await post(client, body)
        assert response.status == 200
    assert len(store.licenses(system="clearkey")) == 2


async def test_a_request_without_a_nonce_leaves_no_replay_key_behind(client, keyring, store):
    """Clear Key carries no nonce of the client's: a replay key for it could never match, so none is kept."""
    body = clearkey.build_license_request([kid_of(keyring, "demo-movie", "SD")])
    for _ in range(3):
        assert (await post(client, body))[0].status == 200
    assert store.counts()["licenses"] == 3 and store.counts()["seen_requests"] == 0


# -------------------------------------------------------------- refusals

@pytest.mark.parametrize("payload", [b"", b"{not json", b"[1,2]", {"type": "temporary"},
                                     {"kids": [], "type": "temporary"}, {"kids": [1], "type": "temporary"}])
async def test_malformed_bodies(client, store, payload):
    await assert_refused(client, payload, 400, "MALFORMED_CHALLENGE", store)


async def test_padded_base64url_kid(client, keyring, store):
    kid = clearkey.b64url_encode(kid_of(keyring, "demo-movie", "SD")) + "=="
    doc = await assert_refused(client, {"kids": [kid], "type": "temporary"}, 400, "MALFORMED_CHALLENGE", store)
    assert "padded" in doc["error"]["message"]


async def test_plain_base64_kid(client, store):
    await assert_refused(client, {"kids": ["+/+/+/+/+/+/+/+/+/+/+w"], "type": "temporary"}, 400,
                         "MALFORMED_CHALLENGE", store)


async def test_kid_of_wrong_length(client, store):
    await assert_refused(client, {"kids": [clearkey.b64url_encode(b"x" * 8)], "type": "temporary"}, 400,
                         "MALFORMED_CHALLENGE", store)


async def test_wrong_type(client, keyring, store):
    kid = clearkey.b64url_encode(kid_of(keyring, "demo-movie", "SD"))
    await assert_refused(client, {"kids": [kid], "type": "persistent-usage-record"}, 400, "UNSUPPORTED_REQUEST", store)


async def test_unknown_kid(client, store):
    await assert_refused(client, clearkey.build_license_request([b"\x42" * 16]), 404, "KEY_NOT_FOUND", store)


async def test_kids_of_two_titles_are_refused(client, keyring, store):
    kids = [kid_of(keyring, "demo-movie", "SD"), kid_of(keyring, "demo-episode", "SD")]
    await assert_refused(client, clearkey.build_license_request(kids), 404, "KEY_NOT_FOUND", store)


async def test_oversized_body(client, store):
    await assert_refused(client, b"{" + b" " * clearkey.MAX_MESSAGE_BYTES + b"}", 413, "CHALLENGE_TOO_LARGE", store)


async def test_stream_only_title_refuses_persistent_but_streams(client, keyring, store):
    kid = kid_of(keyring, "stream-only", "SD")
    await assert_refused(client, clearkey.build_license_request([kid], clearkey.SessionType.PERSISTENT_LICENSE),
                         403, "OFFLINE_NOT_ALLOWED", store)
    response, _ = await post(client, clearkey.build_license_request([kid]))
    assert response.status == 200
    assert store.audit_trail(limit=5)[1]["code"] == "OFFLINE_NOT_ALLOWED"


async def test_revoked_key_is_refused(client, keyring, store, settings):
    sd, hd = kid_of(keyring, "demo-movie", "SD"), kid_of(keyring, "demo-movie", "HD")
    RevocationList(store).revoke(key_id=hd)  # the default namespace's store: applies from the next request
    doc = await assert_refused(client, clearkey.build_license_request([sd, hd]), 403, "KEY_REVOKED", store)
    assert hd.hex() in doc["error"]["message"]
    response, raw = await post(client, clearkey.build_license_request([sd]))
    assert response.status == 200 and list(clearkey.parse_license(raw)) == [sd]
    assert any(row["code"] == "KEY_REVOKED" for row in store.audit_trail())


async def test_cfg_persist_applies_the_download_rules(client, keyring, store):
    body = clearkey.build_license_request([kid_of(keyring, "stream-only", "SD")])
    response = await client.post(URL + "?cfg=(persist:true)", data=body)
    assert response.status == 403 and response.headers[ERROR_CODE_HEADER] == "OFFLINE_NOT_ALLOWED"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    response = await client.post(URL + "?cfg=(persist:true,rental:3600)",
                                 data=clearkey.build_license_request([kid_of(keyring, "demo-movie", "SD")]))
    assert response.status == 200 and json.loads(await response.read())["type"] == "temporary"
    [record] = store.licenses(system="clearkey")
    assert record.kind == "persistent" and record.policy["rental_duration"] == 3600


async def test_bad_cfg_is_refused(client, keyring, store):
    body = clearkey.build_license_request([kid_of(keyring, "demo-movie", "SD")])
    response = await client.post(URL + "?cfg=(bogus:1)", data=body)
    assert response.status == 400 and response.headers[ERROR_CODE_HEADER] == "INVALID_POLICY_OVERRIDE"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert store.counts()["licenses"] == 0


async def test_get_is_not_allowed(client):
    response = await client.get(URL)
    assert response.status == 405


# --------------------------------------------------------------- release

async def test_release_marks_matching_licenses_released_and_is_acknowledged(client, keyring, store):
    sd, audio = kid_of(keyring, "demo-movie", "SD"), kid_of(keyring, "demo-movie", "AUDIO")
    episode = kid_of(keyring, "demo-episode", "SD")
    for kids in ([audio, sd], [episode]):
        response, _ = await post(client, clearkey.build_license_request(kids, clearkey.SessionType.PERSISTENT_LICENSE))
        assert response.status == 200
    response, raw = await post(client, clearkey.build_release([sd, audio]))
    assert response.status == 200, raw
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert json.loads(raw) == {"kids": [clearkey.b64url_encode(sd), clearkey.b64url_encode(audio)]}
    states = {r.content_id: r for r in store.licenses(system="clearkey")}
    assert states["demo-movie"].state == "released" and states["demo-movie"].released_at is not None
    assert states["demo-episode"].state == "issued"
    assert store.audit_trail(license_id=states["demo-movie"].license_id)[0]["event"] == "release"


async def test_release_again_is_acknowledged_and_audited(client, keyring, store):
    sd = kid_of(keyring, "demo-movie", "SD")
    response, raw = await post(client, clearkey.build_release([sd]))
    assert response.status == 200 and json.loads(raw) == {"kids": [clearkey.b64url_encode(sd)]}
    assert store.audit_trail(limit=1)[0]["event"] == "release"


async def test_release_of_unknown_kids_is_refused(client, store):
    await assert_refused(client, clearkey.build_release([b"\x42" * 16]), 404, "KEY_NOT_FOUND", store)


async def test_malformed_release_is_refused(client, store):
    await assert_refused(client, {"kids": ["abc="]}, 400, "MALFORMED_CHALLENGE", store)


# ------------------------------------------------------------------ CORS

async def test_preflight(client):
    response = await client.options(URL, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-custom-header",
    })
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "content-type, x-custom-header"
    assert ERROR_CODE_HEADER in response.headers["Access-Control-Expose-Headers"]
    assert int(response.headers["Access-Control-Max-Age"]) > 0


async def test_preflight_with_odd_requested_headers_falls_back_to_content_type(client):
    response = await client.options(URL, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "a b;c",
    })
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type"
