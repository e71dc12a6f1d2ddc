"""Injected faults: the pure book-keeping, the middleware over real HTTP, and a real
device emulator seeing exactly the configured errors."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import aiohttp
import pytest
from pydantic import ValidationError

from license_server.admin_models import FaultSpec
from license_server.errors import ErrorCode
from license_server.faults import FaultBook, fault_dialect
from license_server.protocols import clearkey
from tests.admin_support import admin_settings, call
from tests.conftest import cli_json

NOW = 1_800_000_000


@pytest.fixture
def settings(tmp_path):
    return admin_settings(tmp_path)


def spec(**fields) -> FaultSpec:
    return FaultSpec.model_validate(fields)


# ------------------------------------------------------------------ units

def test_route_names_map_to_fault_dialects():
    assert fault_dialect("widevine.license") == "widevine"
    assert fault_dialect("media.downloads") == "downloads"
    assert fault_dialect("media.file") == "media"
    assert fault_dialect("clearkey.preflight") == "clearkey"
    for untouched in ("admin.faults", "health.healthz", "health.openapi", None, ""):
        assert fault_dialect(untouched) is None


def test_count_limits_a_fault_and_other_dialects_are_untouched():
    book = FaultBook()
    fault = book.add(spec(dialect="widevine", action="error", error_code="DEVICE_REVOKED", count=2), NOW)
    assert book.take("playready", frozenset(), NOW) is None
    hits = [book.take("widevine", frozenset(), NOW) for _ in range(3)]
    assert [h.answer.id if h else None for h in hits] == [fault.id, fault.id, None]
    assert fault.hits == 2 and fault.remaining == 0 and book.active(NOW) == []


def test_window_ends_on_the_server_clock():
    book = FaultBook()
    book.add(spec(action="status", http_status=503, duration="30s"), NOW)
    assert book.take("clearkey", frozenset(), NOW + 29) is not None
    assert book.take("media", frozenset(), NOW + 29) is not None
    assert book.take("clearkey", frozenset(), NOW + 30) is None
    assert book.active(NOW + 30) == []


def test_count_and_window_whichever_ends_first():
    book = FaultBook()
    book.add(spec(action="drop", count=5, duration=60), NOW)
    assert book.take("widevine", frozenset(), NOW + 1) is not None
    assert book.take("widevine", frozenset(), NOW + 60) is None


def test_content_matching_and_wants_content():
    book = FaultBook()
    book.add(spec(dialect="downloads", content_id="demo-movie", action="error", error_code="URL_EXPIRED", count=9),
             NOW)
    assert book.wants_content("downloads", NOW) and not book.wants_content("widevine", NOW)
    assert book.take("downloads", frozenset(), NOW) is None
    assert book.take("downloads", frozenset({"other"}), NOW) is None
    assert book.take("downloads", frozenset({"other", "demo-movie"}), NOW) is not None


def test_latencies_add_up_and_the_oldest_terminal_fault_answers():
    book = FaultBook()
    slow = book.add(spec(action="latency", latency_ms=100, count=1), NOW)
    first = book.add(spec(action="error", error_code="KEY_REVOKED", latency_ms=50, count=1), NOW)
    second = book.add(spec(action="drop", count=1), NOW)
    hit = book.take("widevine", frozenset(), NOW)
    assert (hit.latency_ms, hit.answer.id, hit.applied) == (150, first.id, (slow.id, first.id))
    assert second.remaining == 1  # not applied, not used up
    assert book.take("widevine", frozenset(), NOW).answer.id == second.id
    assert book.take("widevine", frozenset(), NOW) is None


@pytest.mark.parametrize("fields", [
    {"action": "latency", "count": 1},
    {"action": "error", "count": 1},
    {"action": "status", "count": 1},
    {"action": "drop"},
    {"action": "drop", "count": 0},
    {"action": "drop", "duration": "0s"},
    {"action": "drop", "duration": "30 days"},
    {"action": "drop", "duration": "9w"},
    {"action": "explode", "count": 1},
    {"action": "error", "error_code": "NOT_A_CODE", "count": 1},
    {"action": "status", "http_status": 200, "count": 1},
    {"dialect": "rtmp", "action": "drop", "count": 1},
    {"action": "drop", "count": 1, "content_id": "../etc"},
    {"action": "drop", "count": 1, "colour": "red"},
])
def test_invalid_fault_specs_are_refused(fields):
    with pytest.raises(ValidationError):
        FaultSpec.model_validate(fields)


# ------------------------------------------------------- over real HTTP

async def add_fault(client, **fields) -> dict:
    status, _, body = await call(client, "POST", "/admin/faults", fields)
    assert status == 201, body
    return body


async def test_error_fault_reaches_widevine_n_times_in_its_native_shape(client, widevine, make_device):
    device = make_device("L1")
    fault = await add_fault(client, dialect="widevine", action="error", error_code="DEVICE_REVOKED", count=2)
    for _ in range(2):
        status, headers, outcome, _ = await widevine.acquire(device)
        assert (status, headers["X-DRM-Error-Code"]) == (403, "DEVICE_REVOKED")
        assert outcome.code == "DEVICE_REVOKED" and "injected fault" in outcome.message  # the CDM read the error
    status, _, _, _ = await widevine.acquire(device)
    assert status == 200
    _, _, listing = await call(client, "GET", "/admin/faults")
    assert listing == {"faults": []} and fault["remaining"] == 2


async def test_status_and_error_faults_on_clearkey_keep_cors_and_json_shape(client, keyring):
    kid = next(t.kid for t in keyring.catalog.title("demo-movie").tracks if t.track.value == "SD")
    body = clearkey.build_license_request([kid])
    await add_fault(client, dialect="clearkey", action="status", http_status=503, count=1)
    await add_fault(client, dialect="clearkey", action="error", error_code="KEY_REVOKED", http_status=451, count=1)
    first = await client.post("/clearkey/license", data=body)
    assert first.status == 503 and first.headers["Access-Control-Allow-Origin"] == "*"
    assert (await first.json())["error"]["code"] == "INJECTED_FAULT"
    second = await client.post("/clearkey/license", data=body)
    assert second.status == 451 and (await second.json())["error"]["code"] == "KEY_REVOKED"
    third = await client.post("/clearkey/license", data=body)
    assert third.status == 200 and "keys" in await third.json()


async def test_cors_preflights_are_neither_disturbed_nor_counted(client):
    await add_fault(client, dialect="clearkey", action="status", http_status=503, count=1)
    preflight = await client.options("/clearkey/license", headers={"Origin": "https://player.example",
                                                                   "Access-Control-Request-Method": "POST"})
    assert preflight.status == 204
    assert (await client.post("/clearkey/license", data=b"{}")).status == 503


async def test_playready_error_fault_is_a_soap_fault(client):
    await add_fault(client, dialect="playready", action="error", error_code="DEVICE_REVOKED", count=1)
    response = await client.post("/playready/rightsmanager.asmx", data=b"<not-even-soap/>")
    text = await response.text()
    assert response.status == 500 and response.headers["X-DRM-Error-Code"] == "DEVICE_REVOKED"
    assert "Fault" in text and "injected fault" in text


async def test_latency_fault_delays_then_serves(client):
    await add_fault(client, dialect="clearkey", action="latency", latency_ms=300, count=1)
    started = time.monotonic()
    response = await client.post("/clearkey/license", data=b"{}")
    assert time.monotonic() - started >= 0.29
    assert response.headers["X-DRM-Error-Code"] == "MALFORMED_CHALLENGE"  # served normally afterwards
    started = time.monotonic()
    await client.post("/clearkey/license", data=b"{}")
    assert time.monotonic() - started < 0.25


async def test_drop_closes_the_connection_without_a_response(client, caplog):
    await add_fault(client, dialect="widevine", action="drop", count=1)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await client.post("/widevine/license", data=b"\x08\x04")
    response = await client.post("/widevine/license", data=b"\x08\x04")  # service certificate request
    assert response.status == 200
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_time_window_fault_ends_when_the_test_clock_advances(client):
    await add_fault(client, action="status", http_status=502, duration="30s")
    for _ in range(3):
        assert (await client.post("/clearkey/license", data=b"{}")).status == 502
        assert (await client.post("/widevine/license", data=b"\x08\x04")).status == 502
    status, _, _ = await call(client, "POST", "/admin/clock", {"advance": "31s"})  # admin: never faulted
    assert status == 200
    assert (await client.post("/widevine/license", data=b"\x08\x04")).status == 200
    assert (await call(client, "GET", "/admin/faults"))[2] == {"faults": []}
    assert (await client.get("/healthz")).status == 200


async def test_content_scoped_faults_match_query_and_json_body_and_leave_the_body_intact(client):
    await add_fault(client, dialect="downloads", content_id="demo-movie", action="error",
                    error_code="URL_EXPIRED", count=5)
    await add_fault(client, dialect="widevine", content_id="demo-movie", action="status", http_status=504, count=1)
    wanted = {"device_id": "aabbccdd", "content_id": "demo-movie", "license_id": "aabbccdd"}
    hit = await client.post("/downloads", json=wanted)
    assert (hit.status, hit.headers["X-DRM-Error-Code"]) == (403, "URL_EXPIRED")
    other = await client.post("/downloads", json={**wanted, "content_id": "demo-episode"})
    assert other.headers["X-DRM-Error-Code"] not in ("URL_EXPIRED", "MALFORMED_CHALLENGE")  # handler got the body
    assert (await client.post("/widevine/license", data=b"\x08\x04")).status == 200  # no ?content=: no match
    assert (await client.post("/widevine/license?content=demo-movie", data=b"\x08\x04")).status == 504


async def test_fault_admin_endpoints(client):
    one = await add_fault(client, action="drop", count=3)
    two = await add_fault(client, dialect="media", action="latency", latency_ms=5, duration=120)
    _, _, listing = await call(client, "GET", "/admin/faults")
    assert [f["id"] for f in listing["faults"]] == [one["id"], two["id"]]
    assert listing["faults"][1]["until"] == listing["faults"][1]["created_at"] + 120
    status, _, body = await call(client, "DELETE", f"/admin/faults/{one['id']}")
    assert status == 200 and body == {"cleared": 1}
    status, headers, _ = await call(client, "DELETE", f"/admin/faults/{one['id']}")
    assert status == 404 and headers["X-DRM-Error-Code"] == "ADMIN_NOT_FOUND"
    assert (await call(client, "DELETE", "/admin/faults"))[2] == {"cleared": 1}
    for bad in ({"action": "error", "count": 1}, {"action": "drop"}, "nope"):
        status, headers, _ = await call(client, "POST", "/admin/faults", bad)
        assert status == 400 and headers["X-DRM-Error-Code"] == "ADMIN_REQUEST_INVALID"


async def test_concurrent_requests_consume_a_count_exactly(client):
    await add_fault(client, dialect="widevine", action="error", error_code="KEY_REVOKED", count=3)
    responses = await asyncio.gather(*(client.post("/widevine/license", data=b"\x08\x04") for _ in range(8)))
    assert sorted(r.status for r in responses) == [200] * 5 + [403] * 3


def test_device_emulator_sees_the_configured_error_exactly_n_times(server_process, tmp_path):
    server = server_process()
    device = tmp_path / "phone"
    cli_json("create", str(device), "--json")
    request = urllib.request.Request(
        server.url + "/admin/faults", method="POST",
        data=json.dumps({"dialect": "widevine", "action": "error", "error_code": ErrorCode.DEVICE_REVOKED.value,
                         "count": 2}).encode(),
        headers={"Content-Type": "application/json", **server.admin_headers})
    urllib.request.urlopen(request).read()
    args = ("acquire", str(device), "--server", server.url, "--content", "demo-movie", "--no-privacy", "--json")
    for _ in range(2):
        assert cli_json(*args, expect=3)["error"]["code"] == "DEVICE_REVOKED"
    assert cli_json(*args)["status"] == "granted"
    listing = urllib.request.Request(server.url + "/admin/faults", headers=server.admin_headers)
    with urllib.request.urlopen(listing) as reply:
        assert json.loads(reply.read()) == {"faults": []}  # spent
