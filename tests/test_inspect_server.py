"""``POST /admin/inspect`` and "what would the server do?": same checks as a real request, nothing stored."""

from __future__ import annotations

import base64

import pytest

from license_server.app import create_app
from tests.admin_support import admin_settings, call
from tests.inspect_support import CONTENT, challenges


@pytest.fixture
async def admin(aiohttp_client, tmp_path, store, keyring, clock):
    settings = admin_settings(tmp_path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return await aiohttp_client(create_app(settings, store=store, keyring=keyring, clock=clock))


def stored(store) -> dict[str, int]:
    return store.counts()


@pytest.mark.parametrize("dialect", ["widevine", "fairplay", "playready", "clearkey"])
async def test_dry_run_grants_without_recording(admin, store, make_device, keyring, dialect):
    body = challenges(make_device("L1"), keyring)[dialect]
    before = stored(store)
    status, _, doc = await call(admin, "POST", "/admin/inspect", {"data": base64.b64encode(body).decode()})
    assert status == 200, doc
    would = doc["server_would"]
    assert would["outcome"] == "grant", would
    assert would["content_id"] == CONTENT and would["keys"]
    assert all(set(key) == {"track", "kid", "robustness", "hdcp"} for key in would["keys"])
    assert stored(store) == before
    # the same challenge is still fresh for the real endpoint: the dry run claimed no replay record
    assert store.audit_trail() == []


async def test_rooted_device_challenge_says_device_rooted_and_stores_nothing(admin, store, make_device, keyring):
    body = challenges(make_device("L1", rooted=True), keyring)["widevine"]
    status, _, doc = await call(admin, "POST", "/admin/inspect", body,
                                headers={"Content-Type": "application/octet-stream"})
    assert status == 200
    assert doc["server_would"]["outcome"] == "refusal" and doc["server_would"]["code"] == "DEVICE_ROOTED"
    assert store.counts() == {"devices": 0, "licenses": 0, "audit": 0, "seen_requests": 0}
    assert store.devices() == [] and store.licenses() == [] and store.audit_trail() == []


async def test_dry_run_on_l3_grants_software_tracks_only(admin, make_device):
    from device_emulator.cdm.widevine import WidevineCdm
    from license_server.core.model import LicenseKind

    body = WidevineCdm(make_device("L3")).build_challenge(CONTENT, LicenseKind.TEMPORARY).body
    _, _, doc = await call(admin, "POST", "/admin/inspect", {"data": body.hex()})
    would = doc["server_would"]
    tracks = {key["track"] for key in would["keys"]}
    assert tracks, would
    assert "HD" not in tracks and "UHD1" not in tracks


async def test_dry_run_can_be_switched_off_and_garbage_is_answered(admin):
    status, _, doc = await call(admin, "POST", "/admin/inspect", {"data": "not a drm message at all"})
    assert status == 200 and doc["recognised"] is False and doc["summary"] == "not a recognised DRM message"
    _, _, doc = await call(admin, "POST", "/admin/inspect", {"data": "CAQ=", "dry_run": False})
    assert doc["format"] == "widevine.service_certificate_request" and "server_would" not in doc


async def test_inspect_is_guarded_and_validates_its_input(admin):
    status, _, doc = await call(admin, "POST", "/admin/inspect", {"data": "CAQ="}, auth=False)
    assert status == 401 and doc["error"]["code"] == "ADMIN_UNAUTHORIZED"
    for bad in ({"data": 3}, {"nothing": "x"}, {"data": "CAQ=", "dry_run": "yes"}):
        status, _, doc = await call(admin, "POST", "/admin/inspect", bad)
        assert status == 400 and doc["error"]["code"] == "ADMIN_REQUEST_INVALID"
    status, _, doc = await call(admin, "POST", "/admin/inspect", b"{broken",
                                headers={"Content-Type": "application/json"})
    assert status == 400
    status, _, doc = await call(admin, "POST", "/admin/inspect", b"",
                                headers={"Content-Type": "application/octet-stream"})
    assert status == 400 and doc["error"]["code"] == "ADMIN_REQUEST_INVALID"


async def test_answers_match_the_documented_schema(admin, make_device, keyring):
    from tests.test_openapi import assert_matches

    document = await (await admin.get("/openapi.json")).json()
    for body in (challenges(make_device("L1"), keyring)["playready"], b"garbage", b"CAQ="):
        _, _, doc = await call(admin, "POST", "/admin/inspect", {"data": base64.b64encode(body).decode()})
        assert_matches(document, "POST", "/admin/inspect", 200, doc)


async def test_renewal_requests_are_decoded_but_not_dry_run(admin, make_device):
    from device_emulator.cdm.widevine import WidevineCdm
    from license_server.core.model import LicenseKind
    from tests.conftest import WidevineExchange

    device = make_device("L1")
    status, _, loaded, _ = await WidevineExchange(admin).acquire(device, CONTENT, LicenseKind.PERSISTENT,
                                                                  query="?cfg=(renew:true)")
    assert status == 200
    renewal = WidevineCdm(device).build_renewal(loaded, seconds_since_started=10)
    _, _, doc = await call(admin, "POST", "/admin/inspect", {"data": base64.b64encode(renewal).decode()})
    assert doc["fields"]["msg"]["LicenseRequest"]["type"] == "RENEWAL"
    assert doc["server_would"]["outcome"] == "not_evaluated" and doc["server_would"]["keys"] == []


async def test_every_attested_dialect_has_a_trust_anchor_for_the_dry_run(admin):
    """The dry run finds each dialect's anchor through its routes module (``TRUST``); Clear Key has none."""
    from license_server.console.inspect_api import trust_anchors
    from license_server.dialects import REGISTRY

    anchors = trust_anchors(admin.app)
    assert set(anchors) == {d.name for d in REGISTRY}
    assert {name for name, anchor in anchors.items() if anchor is None} == {"clearkey"}
