"""Namespaces in one process over real HTTP (issue 15): /ns/<name>/ and X-DRM-Namespace route every
endpoint; each namespace has its own test clock, faults, revocations, rights, licenses, devices and
audit; the admin API lists, resets and deletes them; invalid names and the namespace limit are refused."""

from __future__ import annotations

import re

import pytest

from license_server.app import create_app
from license_server.core.model import LicenseKind
from license_server.errors import ERROR_CODE_HEADER
from license_server.protocols.widevine import license_protocol_pb2 as pb
from tests.admin_support import admin_settings, call
from tests.conftest import START, WidevineExchange

DAY = 86400


@pytest.fixture
def settings(tmp_path):
    return admin_settings(tmp_path)


def exchange(client, namespace: str) -> WidevineExchange:
    return WidevineExchange(client, f"/ns/{namespace}/widevine/license")


async def license_state(client, namespace: str, license_id: str) -> str:
    status, _, doc = await call(client, "GET", f"/ns/{namespace}/admin/licenses/{license_id}")
    assert status == 200, doc
    return doc["state"]


async def granted(client, namespace: str, device, content: str = "demo-movie", kind=LicenseKind.TEMPORARY) -> str:
    status, headers, outcome, _ = await exchange(client, namespace).acquire(device, content, kind)
    assert status == 200, headers.get(ERROR_CODE_HEADER)
    return outcome.license_id


async def test_the_clock_of_one_namespace_expires_its_licenses_only(client, make_device):
    device = make_device("L1")
    in_a, in_b = await granted(client, "a", device), await granted(client, "b", device)
    assert await license_state(client, "a", in_a) == await license_state(client, "b", in_b) == "issued"
    status, _, moved = await call(client, "POST", "/ns/a/admin/clock", {"advance": "31d"})
    assert status == 200 and moved["now"] == START + 31 * DAY
    assert await license_state(client, "a", in_a) == "expired"
    assert await license_state(client, "b", in_b) == "issued"
    assert (await call(client, "GET", "/ns/b/admin/clock"))[2]["now"] == START
    assert (await call(client, "GET", "/admin/clock"))[2]["now"] == START  # default untouched
    assert (await client.get("/ns/a/healthz")).status == 200
    health = await (await client.get("/ns/a/healthz")).json()
    assert health["namespace"] == "a" and health["time"] == START + 31 * DAY


async def test_licenses_devices_and_audit_stay_in_their_namespace(client, make_device, store):
    device = make_device("L1")
    license_id = await granted(client, "a", device)
    assert store.licenses() == [] and store.devices() == []  # nothing in default
    assert (await call(client, "GET", f"/admin/licenses/{license_id}"))[0] == 404
    assert (await call(client, "GET", f"/ns/b/admin/licenses/{license_id}"))[0] == 404
    _, _, devices = await call(client, "GET", "/ns/a/admin/devices")
    assert [d["device_id"] for d in devices["devices"]] == [device.device_id]


async def test_faults_in_one_namespace_never_touch_another(client):
    fault = {"dialect": "widevine", "action": "status", "http_status": 503, "count": 2}
    assert (await call(client, "POST", "/ns/a/admin/faults", fault))[0] == 201
    assert (await client.post("/ns/b/widevine/license", data=b"\x08\x04")).status == 200
    assert (await client.post("/widevine/license", data=b"\x08\x04")).status == 200
    assert (await call(client, "GET", "/ns/b/admin/faults"))[2] == {"faults": []}
    assert [(await client.post("/ns/a/widevine/license", data=b"\x08\x04")).status for _ in range(3)] == [503, 503,
                                                                                                          200]


async def test_revocations_and_rights_are_per_namespace(client, make_device):
    device = make_device("L1")
    status, _, _ = await call(client, "POST", "/ns/a/admin/revocations", {"device_id": device.device_id})
    assert status == 201
    status, headers, _, _ = await exchange(client, "a").acquire(device)
    assert (status, headers[ERROR_CODE_HEADER]) == (403, "DEVICE_REVOKED")
    await granted(client, "b", device)
    status, _, _ = await call(client, "PATCH", "/ns/b/admin/rights/titles/demo-episode", {"downloadable": False})
    assert status == 200
    status, headers, _, _ = await exchange(client, "b").acquire(device, "demo-episode", LicenseKind.PERSISTENT)
    assert (status, headers[ERROR_CODE_HEADER]) == (403, "OFFLINE_NOT_ALLOWED")
    await granted(client, "c", device, "demo-episode", LicenseKind.PERSISTENT)
    _, _, rights = await call(client, "GET", "/admin/rights")
    assert "demo-episode" not in rights["titles"]


async def test_the_header_names_the_namespace_and_the_path_wins(client, make_device):
    device = make_device("L1")
    header = {"X-DRM-Namespace": "hdr"}
    pending_status = await client.post("/widevine/license", data=b"\x08\x04", headers=header)
    assert pending_status.status == 200
    await granted(client, "hdr", device)
    _, _, listing = await call(client, "GET", "/admin/licenses", headers=header)
    assert listing["count"] == 1
    assert (await call(client, "POST", "/admin/clock", {"advance": "2d"}, headers=header))[0] == 200
    assert (await call(client, "GET", "/ns/hdr/admin/clock"))[2]["now"] == START + 2 * DAY
    assert (await call(client, "GET", "/ns/other/admin/clock", headers=header))[2]["now"] == START  # path wins
    health = await (await client.get("/healthz", headers=header)).json()
    assert health["namespace"] == "hdr"


@pytest.mark.parametrize("name", ["UPPER", "-lead", "trail-", "a_b", "x" * 41, "a.b"])
async def test_invalid_names_are_refused_in_each_dialects_shape(client, name):
    response = await client.post(f"/ns/{name}/widevine/license", data=b"\x08\x04")
    assert response.status == 400 and response.headers[ERROR_CODE_HEADER] == "INVALID_NAMESPACE"
    signed = pb.SignedMessage.FromString(await response.read())  # a Widevine error message, not JSON
    assert signed.type == pb.SignedMessage.ERROR_RESPONSE
    response = await client.post("/clearkey/license", data=b"{}", headers={"X-DRM-Namespace": name})
    assert response.status == 400 and response.headers[ERROR_CODE_HEADER] == "INVALID_NAMESPACE"
    status, headers, doc = await call(client, "GET", f"/ns/{name}/admin/licenses")
    assert (status, doc["error"]["code"]) == (400, "INVALID_NAMESPACE")
    if "." not in name:
        status, _, doc = await call(client, "POST", f"/admin/namespaces/{name}/reset")
        assert (status, doc["error"]["code"]) == (400, "INVALID_NAMESPACE")


async def test_the_namespace_limit(aiohttp_client, tmp_path, store, keyring, clock):
    settings = admin_settings(tmp_path, max_namespaces=3)
    settings.data_dir.mkdir(parents=True)
    client = await aiohttp_client(create_app(settings, store=store, keyring=keyring, clock=clock))
    assert (await client.get("/ns/one/healthz")).status == 200
    assert (await client.get("/ns/two/healthz")).status == 200
    refused = await client.get("/ns/three/healthz")
    assert refused.status == 429 and refused.headers[ERROR_CODE_HEADER] == "NAMESPACE_LIMIT_REACHED"
    assert (await client.get("/ns/one/healthz")).status == 200  # existing ones still answer
    assert (await call(client, "DELETE", "/admin/namespaces/two"))[0] == 200
    assert (await client.get("/ns/three/healthz")).status == 200


async def test_reset_and_delete_clear_everything(client, make_device):
    device = make_device("L1")
    for name in ("gone", "kept"):
        await granted(client, name, device)
        await call(client, "POST", f"/ns/{name}/admin/clock", {"advance": "3d"})
        await call(client, "POST", f"/ns/{name}/admin/faults", {"dialect": "fairplay", "action": "drop", "count": 5})
        await call(client, "POST", f"/ns/{name}/admin/revocations", {"system_id": 7102})
        await call(client, "PATCH", f"/ns/{name}/admin/rights/titles/demo-episode", {"downloadable": False})
    _, _, listing = await call(client, "GET", "/admin/namespaces")
    counts = {n["name"]: n for n in listing["namespaces"]}
    assert set(counts) == {"default", "gone", "kept"} and counts["kept"]["licenses"] == 1
    assert counts["kept"]["devices"] == 1 and counts["kept"]["audit"] >= 1

    status, _, doc = await call(client, "POST", "/admin/namespaces/kept/reset")
    assert (status, doc) == (200, {"name": "kept", "action": "reset"})
    status, _, doc = await call(client, "DELETE", "/admin/namespaces/gone")
    assert (status, doc) == (200, {"name": "gone", "action": "deleted"})
    _, _, listing = await call(client, "GET", "/admin/namespaces")
    assert [(n["name"], n["licenses"], n["devices"], n["audit"]) for n in listing["namespaces"]] == [
        ("default", 0, 0, 0), ("kept", 0, 0, 0)]
    for name in ("gone", "kept"):  # a deleted namespace comes back empty on its next use
        assert (await call(client, "GET", f"/ns/{name}/admin/clock"))[2]["now"] == START
        assert (await call(client, "GET", f"/ns/{name}/admin/faults"))[2] == {"faults": []}
        assert (await call(client, "GET", f"/ns/{name}/admin/revocations"))[2] == {"revocations": []}
        assert (await call(client, "GET", f"/ns/{name}/admin/licenses"))[2]["count"] == 0
        assert (await call(client, "GET", f"/ns/{name}/admin/devices"))[2]["count"] == 0
        _, _, rights = await call(client, "GET", f"/ns/{name}/admin/rights")
        assert "demo-episode" not in rights["titles"]
    assert "gone" in [n["name"] for n in (await call(client, "GET", "/admin/namespaces"))[2]["namespaces"]]


async def test_default_can_be_reset_never_deleted(client, make_device, store):
    await WidevineExchange(client).acquire(make_device("L1"))
    status, _, doc = await call(client, "DELETE", "/admin/namespaces/default")
    assert (status, doc["error"]["code"]) == (409, "NAMESPACE_NOT_DELETABLE")
    assert len(store.licenses()) == 1
    assert (await call(client, "POST", "/admin/namespaces/default/reset"))[0] == 200
    assert store.licenses() == [] and store.devices() == []
    status, _, doc = await call(client, "DELETE", "/admin/namespaces/never-used")
    assert (status, doc["error"]["code"]) == (404, "ADMIN_NOT_FOUND")
    assert (await call(client, "GET", "/admin/namespaces", auth=False))[0] == 401


def concrete(path: str) -> str:
    """A route's path with every {parameter} filled in."""
    return re.sub(r"\{([^}:]+)(?::[^}]+)?\}", lambda m: "demo-movie/x" if m.group(1) == "path" else "x", path)


async def test_every_route_answers_under_ns_like_unprefixed(client):
    seen = 0
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path is None and "prefix" in info:
            path = info["prefix"] + "/console.css"
        if path is None or route.method in ("*", "HEAD"):
            continue
        path = concrete(path)
        plain = await call(client, route.method, path)
        prefixed = await call(client, route.method, "/ns/x" + path)
        assert (prefixed[0], prefixed[1].get(ERROR_CODE_HEADER)) == (plain[0], plain[1].get(ERROR_CODE_HEADER)), \
            f"{route.method} {path}"
        seen += 1
    assert seen > 40


async def test_presigned_urls_and_openapi_keep_the_namespace(client):
    document = await (await client.get("/ns/x/openapi.json")).json()
    assert document["servers"] == [{"url": "/ns/x"}]
    assert "servers" not in await (await client.get("/openapi.json")).json()


async def test_a_pre_namespace_rights_file_is_imported_into_default_only(aiohttp_client, settings, store, keyring,
                                                                         clock):
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.rights_overlay_path.write_text('{"titles": {"demo-episode": {"downloadable": false}}}')
    client = await aiohttp_client(create_app(settings, store=store, keyring=keyring, clock=clock))
    assert (await call(client, "GET", "/admin/rights"))[2]["titles"]["demo-episode"]["downloadable"] is False
    assert "demo-episode" not in (await call(client, "GET", "/ns/a/admin/rights"))[2]["titles"]


async def test_requests_of_one_loop_pass_share_one_state_read(client, store, monkeypatch):
    import asyncio

    from license_server.namespaces import NAMESPACES

    namespace = client.server.app[NAMESPACES].get("default")
    reads = []
    generation = store.state_generation
    monkeypatch.setattr(store, "state_generation", lambda: reads.append(1) or generation())
    await asyncio.sleep(0)  # a fresh pass
    namespace.refresh()
    namespace.refresh()
    assert len(reads) == 1  # the second request of the pass reuses the first one's read
    store.update_document("clock", lambda _: '{"offset": 3600}')  # another writer moves the clock
    await asyncio.sleep(0)
    namespace.refresh()
    assert len(reads) == 2 and namespace.clock.offset == 3600  # the next pass reads, and sees it
