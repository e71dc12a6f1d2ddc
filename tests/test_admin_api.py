"""The admin API over real HTTP: auth on every route, licenses, devices, revocations."""

from __future__ import annotations

import json
import re
import stat

import pytest

from device_emulator.cdm.widevine import CdmError, WidevineCdm
from license_server import admin_auth
from license_server.app import create_app
from license_server.core.model import LicenseKind
from license_server.revocations import RevocationList
from license_server.store_api import REVOCATIONS_DOCUMENT
from license_server.tokens import TOKEN_HEADER, mint
from tests.admin_support import ADMIN_TOKEN, admin_settings, call, non_loopback_address
from tests.conftest import KEYS, START

RENEWABLE = "?cfg=(persist:true,rental:86400,renew:true)"


@pytest.fixture
def settings(tmp_path):
    """Overrides the shared fixture: the same test server, with a known admin token."""
    return admin_settings(tmp_path)


def admin_routes(app) -> list[tuple[str, str]]:
    """(method, concrete path) of every admin route the app has, placeholders filled in."""
    routes = []
    for route in app.router.routes():
        if route.name and route.name.startswith("admin.") and route.method != "HEAD":
            path = re.sub(r"\{[^}]+\}", "x1", route.resource.canonical)
            routes.append((route.method, path))
    return sorted(routes)


def test_every_admin_route_is_listed(client):
    paths = {p for _, p in admin_routes(client.server.app)}
    assert {"/admin/licenses", "/admin/licenses/x1", "/admin/licenses/x1/expire", "/admin/devices",
            "/admin/devices/x1", "/admin/revocations", "/admin/revocations/x1/x1", "/admin/faults",
            "/admin/faults/x1", "/admin/clock"} <= paths


# ------------------------------------------------------------------- auth

@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-token-wrong-token-0000"},
    {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
    {"Authorization": f"Basic {ADMIN_TOKEN}"},
    {"Authorization": ADMIN_TOKEN},
    {"Authorization": "Bearer"},
], ids=["missing", "wrong", "longer", "shorter", "basic-scheme", "no-scheme", "empty"])
async def test_every_admin_route_refuses_missing_or_wrong_tokens(client, store, headers):
    routes = admin_routes(client.server.app)
    assert len(routes) >= 12
    before = store.counts()
    for method, path in routes + [("GET", "/admin/no-such-route")]:
        status, got, body = await call(client, method, path, {"action": "drop", "count": 1}
                                       if method == "POST" else None, headers=headers, auth=False)
        assert status == 401, (method, path, status, body)
        assert got["X-DRM-Error-Code"] == body["error"]["code"] == "ADMIN_UNAUTHORIZED"
        assert got["WWW-Authenticate"].startswith("Bearer")
    assert store.counts() == before
    status, _, body = await call(client, "GET", "/admin/faults")
    assert status == 200 and body == {"faults": []}  # the refused POSTs added nothing


async def test_right_token_any_scheme_case_and_unknown_admin_route(client):
    status, _, _ = await call(client, "GET", "/admin/licenses", headers={"Authorization": f"bearer {ADMIN_TOKEN}"},
                              auth=False)
    assert status == 200
    status, headers, body = await call(client, "GET", "/admin/no-such-route")
    assert status == 404 and headers["X-DRM-Error-Code"] == "ADMIN_NOT_FOUND"


def test_loopback_peer_classification():
    for address in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert admin_auth.is_loopback_peer(address), address
    for address in ("10.0.0.5", "192.0.2.2", "::ffff:10.0.0.5", "fd00::2", "", None, "not-an-ip"):
        assert not admin_auth.is_loopback_peer(address), address
    assert admin_auth.bearer_matches(f"Bearer  {ADMIN_TOKEN} ", ADMIN_TOKEN)
    assert not admin_auth.bearer_matches("Bearer \u00e9\u00e9", ADMIN_TOKEN)


@pytest.mark.parametrize("remote", [False, True], ids=["loopback-only", "admin-remote"])
async def test_non_loopback_peers_are_refused_unless_admin_remote(aiohttp_server, aiohttp_client, tmp_path, store,
                                                                  keyring, clock, remote):
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    settings = admin_settings(tmp_path, host=address, admin_remote=remote)
    settings.data_dir.mkdir(parents=True)
    server = await aiohttp_server(create_app(settings, store=store, keyring=keyring, clock=clock), host=address)
    client = await aiohttp_client(server)
    status, headers, body = await call(client, "GET", "/admin/licenses")
    if remote:
        assert status == 200
    else:
        assert status == 403 and headers["X-DRM-Error-Code"] == "ADMIN_NOT_LOOPBACK"
        status, _, _ = await call(client, "GET", "/admin/licenses", auth=False)
        assert status == 403  # remote peers learn nothing about the token either
    status, _, _ = await call(client, "GET", "/healthz", auth=False)
    assert status == 200  # non-admin routes are not affected


def test_token_file_is_written_atomically_with_mode_0600(tmp_path):
    path = tmp_path / "d" / "admin-token"
    admin_auth.write_token_file(path, "first-token-value-0001")
    admin_auth.write_token_file(path, "second-token-value-002")
    assert path.read_text() == "second-token-value-002\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["admin-token"]
    generated = {admin_auth.generate_token() for _ in range(3)}
    assert len(generated) == 3 and all(re.fullmatch(r"[A-Za-z0-9_-]{43}", t) for t in generated)


# --------------------------------------------------------------- licenses

async def acquire(client, device, content_id="demo-movie", kind=LicenseKind.PERSISTENT, query=RENEWABLE,
                  token=None):
    cdm = WidevineCdm(device)
    pending = cdm.build_challenge(content_id, kind, privacy=False)
    headers = {TOKEN_HEADER: token} if token else {}
    response = await client.post("/widevine/license" + query, data=pending.body, headers=headers)
    body = await response.read()
    assert response.status == 200, (response.status, response.headers.get("X-DRM-Error-Code"))
    return cdm, cdm.process_license(pending, body)


def token_for(account: str, clock) -> str:
    private = json.loads((KEYS / "tokens" / "signing-keys.jwks.json").read_text())
    claims = {"sub": account, "tier": "premium", "content": ["demo-movie", "second-movie", "stream-only"],
              "policy": {"persistent": True, "renew": True}, "exp": clock.now() + 3600}
    return mint(claims, private_jwks=private, kid="test-hs256")


async def test_list_and_filter_licenses(client, make_device, clock):
    phone, tablet = make_device("L1"), make_device("L1", model="emulated-tablet-l1")
    _, first = await acquire(client, phone, query="?cfg=(persist:true,rental:3600)")
    _, second = await acquire(client, tablet, token=token_for("alice", clock))
    _, third = await acquire(client, phone, kind=LicenseKind.TEMPORARY, query="")

    status, _, body = await call(client, "GET", "/admin/licenses")
    assert status == 200 and body["count"] == 3
    assert [v["license_id"] for v in body["licenses"]] == [first.license_id, second.license_id, third.license_id]

    async def ids(query: str) -> list[str]:
        status, _, doc = await call(client, "GET", "/admin/licenses?" + query)
        assert status == 200, doc
        return sorted(v["license_id"] for v in doc["licenses"])

    assert await ids(f"device_id={phone.device_id}") == sorted([first.license_id, third.license_id])
    assert await ids(f"device_id={phone.device_id.upper()}") == sorted([first.license_id, third.license_id])
    assert await ids("account=alice") == [second.license_id]
    assert [(v["account"], v["tier"]) for v in body["licenses"]] == [(None, None), ("alice", "premium"), (None, None)]
    assert await ids("account=bob") == []
    assert await ids("content_id=demo-movie&system=widevine") == sorted(
        [first.license_id, second.license_id, third.license_id])
    assert await ids("system=playready") == []
    assert await ids("state=issued&limit=2") == sorted([first.license_id, second.license_id])
    clock.advance(3601)  # past the first license's rental window only
    assert await ids("state=expired") == [first.license_id]
    assert await ids("state=issued") == sorted([second.license_id, third.license_id])


@pytest.mark.parametrize("query", ["state=bogus", "limit=0", "limit=1001", "device_id=not-hex",
                                   "content_id=../x", "unknown=1", "state=issued&state=expired"])
async def test_bad_license_queries_are_refused(client, query):
    status, headers, body = await call(client, "GET", "/admin/licenses?" + query)
    assert status == 400 and headers["X-DRM-Error-Code"] == "ADMIN_REQUEST_INVALID", body


async def test_show_license_has_policy_state_audit_and_no_secrets(client, store, make_device, clock):
    device = make_device("L1")
    _, loaded = await acquire(client, device)
    status, _, doc = await call(client, "GET", f"/admin/licenses/{loaded.license_id}")
    assert status == 200
    assert doc["state"] == doc["stored_state"] == "issued" and doc["device_id"] == device.device_id
    assert doc["policy"]["can_persist"] is True and doc["policy"]["rental_duration"] == 86400
    assert doc["expires_at"] == doc["license_start"] + 86400
    assert [e["event"] for e in doc["audit"]] == ["grant"]
    secrets = store.license(loaded.license_id).secrets
    raw = json.dumps(doc)
    assert "secrets" not in doc and secrets and not any(v in raw for v in secrets.values())

    clock.advance(86400 + 5)
    status, _, doc = await call(client, "GET", f"/admin/licenses/{loaded.license_id}")
    assert (doc["state"], doc["stored_state"]) == ("expired", "issued")  # computed, nothing written by a read
    status, headers, _ = await call(client, "GET", "/admin/licenses/feedface00")
    assert status == 404 and headers["X-DRM-Error-Code"] == "LICENSE_NOT_FOUND"


async def test_force_expire_then_renewal_is_refused(client, store, make_device):
    device = make_device("L1")
    cdm, loaded = await acquire(client, device)
    renewal = await client.post("/widevine/license", data=cdm.build_renewal(loaded, seconds_since_started=5))
    assert renewal.status == 200  # renewable before

    status, _, doc = await call(client, "POST", f"/admin/licenses/{loaded.license_id}/expire",
                                {"reason": "support ticket 42"})
    assert status == 200 and doc["state"] == doc["stored_state"] == "expired"
    assert doc["audit"][0]["event"] == "expire" and "support ticket 42" in doc["audit"][0]["message"]
    assert store.license(loaded.license_id).state == "expired"

    refused = await client.post("/widevine/license", data=cdm.build_renewal(loaded, seconds_since_started=9))
    assert refused.status == 403 and refused.headers["X-DRM-Error-Code"] == "LICENSE_EXPIRED"

    status, _, again = await call(client, "POST", f"/admin/licenses/{loaded.license_id}/expire")  # no body
    assert status == 200 and [e["event"] for e in again["audit"]].count("expire") == 1  # idempotent


async def test_force_expire_refusals(client, store, make_device, clock):
    device = make_device("L1")
    _, loaded = await acquire(client, device)
    store.mark_released(loaded.license_id, now=clock.now(), system="widevine", reason="test")
    status, headers, _ = await call(client, "POST", f"/admin/licenses/{loaded.license_id}/expire")
    assert status == 403 and headers["X-DRM-Error-Code"] == "LICENSE_RELEASED"
    assert store.license(loaded.license_id).state == "released"
    status, headers, _ = await call(client, "POST", "/admin/licenses/0011223344/expire")
    assert status == 404 and headers["X-DRM-Error-Code"] == "LICENSE_NOT_FOUND"
    for body in ("not json", "[1]", {"reason": 5}, {"reason": "x", "extra": 1}):
        status, headers, _ = await call(client, "POST", f"/admin/licenses/{loaded.license_id}/expire", body)
        assert status == 400 and headers["X-DRM-Error-Code"] == "ADMIN_REQUEST_INVALID", body


# ---------------------------------------------------------------- devices

async def test_devices_list_and_show(client, make_device):
    phone, laptop = make_device("L1"), make_device("L3", model="emulated-laptop-l3")
    _, loaded = await acquire(client, phone)
    await acquire(client, laptop, kind=LicenseKind.TEMPORARY, query="")
    status, _, doc = await call(client, "GET", "/admin/devices")
    assert status == 200 and doc["count"] == 2
    by_id = {d["device_id"]: d for d in doc["devices"]}
    assert by_id[phone.device_id]["model"] == "emulated-phone-l1" and not by_id[phone.device_id]["revoked"]
    assert by_id[laptop.device_id]["security_level"] == "L3"

    status, _, shown = await call(client, "GET", f"/admin/devices/{phone.device_id}")
    assert status == 200 and [lic["license_id"] for lic in shown["licenses"]] == [loaded.license_id]
    status, headers, _ = await call(client, "GET", "/admin/devices/00aa00aa00aa")
    assert status == 404 and headers["X-DRM-Error-Code"] == "DEVICE_NOT_FOUND"


async def refused_code(widevine, device) -> str | None:
    status, headers, outcome, _ = await widevine.acquire(device)
    if status == 200:
        assert not isinstance(outcome, CdmError)
        return None
    return headers["X-DRM-Error-Code"]


async def test_revoke_a_model_then_unrevoke(client, widevine, make_device, store):
    l3, l1 = make_device("L3"), make_device("L1")
    assert await refused_code(widevine, l3) is None
    status, _, entry = await call(client, "POST", "/admin/revocations",
                                  {"model": "emulated-phone-l3", "reason": "leaked keybox"})
    assert status == 201
    assert entry == {"kind": "system_id", "value": "7101", "model": "emulated-phone-l3",
                     "reason": "leaked keybox", "revoked_at": START}
    assert await refused_code(widevine, l3) == "DEVICE_REVOKED"
    assert await refused_code(widevine, l1) is None  # another model is unaffected
    _, _, devices = await call(client, "GET", "/admin/devices")
    flags = {d["device_id"]: d["revoked_by"] for d in devices["devices"]}
    assert flags == {l3.device_id: ["system_id"], l1.device_id: []}
    assert RevocationList(store).document()["system_ids"] == [7101]  # the default namespace's document

    status, _, listing = await call(client, "DELETE", "/admin/revocations/system_id/7101")
    assert status == 200 and listing == {"revocations": []}
    assert await refused_code(widevine, l3) is None


async def test_revoke_a_device_by_id_and_system_id(client, widevine, make_device):
    one, other = make_device("L1"), make_device("L1")
    status, _, entry = await call(client, "POST", "/admin/revocations", {"device_id": one.device_id.upper()})
    assert status == 201 and entry["kind"] == "device" and entry["value"] == one.device_id
    assert await refused_code(widevine, one) == "DEVICE_REVOKED"
    assert await refused_code(widevine, other) is None
    status, _, _ = await call(client, "POST", "/admin/revocations", {"system_id": 7001, "reason": "x"})
    assert status == 201 and await refused_code(widevine, other) == "DEVICE_REVOKED"
    status, _, listing = await call(client, "GET", "/admin/revocations")
    assert [(e["kind"], e["value"]) for e in listing["revocations"]] == [("device", one.device_id),
                                                                        ("system_id", "7001")]
    assert (await call(client, "DELETE", "/admin/revocations/model/emulated-phone-l1"))[0] == 200
    assert (await call(client, "DELETE", f"/admin/revocations/device/{one.device_id}"))[0] == 200
    assert await refused_code(widevine, one) is None and await refused_code(widevine, other) is None


@pytest.mark.parametrize("method,path,body,status,code", [
    ("POST", "/admin/revocations", {"device_id": "abcd1234", "system_id": 7001}, 400, "ADMIN_REQUEST_INVALID"),
    ("POST", "/admin/revocations", {}, 400, "ADMIN_REQUEST_INVALID"),
    ("POST", "/admin/revocations", {"device_id": "zz-not-hex"}, 400, "ADMIN_REQUEST_INVALID"),
    ("POST", "/admin/revocations", {"key_id": "00"}, 400, "ADMIN_REQUEST_INVALID"),
    ("POST", "/admin/revocations", {"model": "no-such-model"}, 404, "ADMIN_NOT_FOUND"),
    ("POST", "/admin/revocations", None, 400, "ADMIN_REQUEST_INVALID"),
    ("DELETE", "/admin/revocations/device/abcd1234", None, 404, "ADMIN_NOT_FOUND"),
    ("DELETE", "/admin/revocations/system_id/seven", None, 400, "ADMIN_REQUEST_INVALID"),
    ("DELETE", "/admin/revocations/colour/blue", None, 404, "ADMIN_NOT_FOUND"),
])
async def test_bad_revocation_requests(client, store, method, path, body, status, code):
    got, headers, _ = await call(client, method, path, body)
    assert (got, headers["X-DRM-Error-Code"]) == (status, code)
    assert store.document(REVOCATIONS_DOCUMENT) is None  # nothing written


async def test_unreadable_revocation_list_is_reported_not_overwritten(client, store):
    store.update_document(REVOCATIONS_DOCUMENT, lambda _: "{not json")
    for method, path, body in (("GET", "/admin/revocations", None),
                               ("POST", "/admin/revocations", {"system_id": 7001})):
        status, headers, _ = await call(client, method, path, body)
        assert status == 500 and headers["X-DRM-Error-Code"] == "INTERNAL_ERROR"
    assert store.document(REVOCATIONS_DOCUMENT) == "{not json"


async def test_revocation_list_keeps_hand_written_entries_and_key_ids(client, store):
    RevocationList(store).replace({"devices": ["aa11"], "key_ids": ["00" * 16]})
    status, _, _ = await call(client, "POST", "/admin/revocations", {"system_id": 7102})
    assert status == 201
    doc = json.loads(store.document(REVOCATIONS_DOCUMENT) or "")
    assert doc["devices"] == ["aa11"] and doc["key_ids"] == ["00" * 16] and doc["system_ids"] == [7102]


async def test_a_pre_namespace_revocations_file_is_imported_once(aiohttp_client, settings, store, keyring, clock):
    """Upgrade path: <data_dir>/revocations.json becomes the default namespace's document at start."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.revocations_path.write_text(json.dumps({"devices": ["aa11"]}))
    client = await aiohttp_client(create_app(settings, store=store, keyring=keyring, clock=clock))
    _, _, listing = await call(client, "GET", "/admin/revocations")
    assert [(e["kind"], e["value"]) for e in listing["revocations"]] == [("device", "aa11")]
    settings.revocations_path.write_text(json.dumps({"devices": []}))  # the file is no longer read
    _, _, listing = await call(client, "GET", "/admin/revocations")
    assert len(listing["revocations"]) == 1
