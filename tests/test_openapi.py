"""``GET /openapi.json``: a valid OpenAPI 3.1 document that covers every admin route, and
live responses of every documented endpoint validate against it."""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec

from license_server.core.model import LicenseKind
from license_server.protocols import clearkey
from tests.admin_support import admin_settings, call
from tests.media_support import fake_package
from tests.test_admin_api import acquire, admin_routes


@pytest.fixture
def settings(tmp_path):
    fake_package(tmp_path / "media")  # so POST /downloads can answer 200
    return admin_settings(tmp_path, media_dir=tmp_path / "media")


@pytest.fixture
async def document(client):
    response = await client.get("/openapi.json")  # no token: it is documentation
    assert response.status == 200
    return await response.json()


def schema_for(doc: dict, method: str, path: str, status: int) -> dict:
    operation = doc["paths"][path][method.lower()]
    assert str(status) in operation["responses"], (method, path, status, list(operation["responses"]))
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    return {**schema, "components": doc["components"]}  # so "#/components/..." references resolve


def assert_matches(doc: dict, method: str, path: str, status: int, body) -> None:
    errors = sorted(Draft202012Validator(schema_for(doc, method, path, status)).iter_errors(body), key=str)
    assert not errors, f"{method} {path} {status}: " + "; ".join(e.message for e in errors[:3])


def test_document_is_valid_openapi(document):
    validate_spec(document)
    assert document["openapi"].startswith("3.1")
    assert "adminBearer" in document["components"]["securitySchemes"]


def test_document_and_router_agree(client, document):
    documented = {(m.upper(), re.sub(r"\{[^}]+\}", "x1", p)) for p, ops in document["paths"].items()
                  for m in ops if p.startswith("/admin/")}
    assert documented == set(admin_routes(client.server.app))
    for path, ops in document["paths"].items():
        for op in ops.values():
            assert ("security" in op) == path.startswith("/admin/"), path


def test_the_validator_can_fail(document):
    errors = list(Draft202012Validator(schema_for(document, "GET", "/admin/licenses", 200)).iter_errors(
        {"count": "three", "licenses": [{"license_id": 1}]}))
    assert errors


async def test_live_admin_responses_match_the_document(client, document, make_device, keyring):
    device = make_device("L1")
    _, loaded = await acquire(client, device)
    lic, dev = loaded.license_id, device.device_id

    async def check(method: str, path: str, template: str, body=None, expect: int = 200, **kw) -> dict:
        status, _, got = await call(client, method, path, body, **kw)
        assert status == expect, (method, path, status, got)
        assert_matches(document, method, template, status, got)
        return got

    await check("GET", "/admin/licenses", "/admin/licenses")
    await check("GET", "/admin/licenses?state=issued&limit=5", "/admin/licenses")
    await check("GET", f"/admin/licenses/{lic}", "/admin/licenses/{license_id}")
    await check("GET", "/admin/licenses/0000aaaa", "/admin/licenses/{license_id}", expect=404)
    await check("GET", "/admin/licenses?state=nope", "/admin/licenses", expect=400)
    await check("GET", "/admin/devices", "/admin/devices")
    await check("GET", f"/admin/devices/{dev}", "/admin/devices/{device_id}")
    await check("GET", "/admin/devices/0000aaaa", "/admin/devices/{device_id}", expect=404)
    await check("POST", "/admin/revocations", "/admin/revocations", {"model": "emulated-tablet-l1", "reason": "t"},
                expect=201)
    await check("POST", "/admin/revocations", "/admin/revocations", {"device_id": dev}, expect=201)
    await check("POST", "/admin/revocations", "/admin/revocations", {"key_id": "00" * 16}, expect=201)
    await check("POST", "/admin/revocations", "/admin/revocations", {"model": "nope"}, expect=404)
    await check("GET", "/admin/revocations", "/admin/revocations")
    await check("DELETE", f"/admin/revocations/device/{dev}", "/admin/revocations/{kind}/{value}")
    await check("DELETE", "/admin/revocations/device/abcdef12", "/admin/revocations/{kind}/{value}", expect=404)
    fault = await check("POST", "/admin/faults", "/admin/faults",
                        {"dialect": "fairplay", "action": "error", "error_code": "KEY_REVOKED", "count": 2},
                        expect=201)
    await check("POST", "/admin/faults", "/admin/faults", {"action": "latency", "latency_ms": 1, "duration": "1m"},
                expect=201)
    await check("POST", "/admin/faults", "/admin/faults", {"action": "error"}, expect=400)
    await check("GET", "/admin/faults", "/admin/faults")
    await check("DELETE", f"/admin/faults/{fault['id']}", "/admin/faults/{fault_id}")
    await check("DELETE", "/admin/faults/f999", "/admin/faults/{fault_id}", expect=404)
    await check("DELETE", "/admin/faults", "/admin/faults")
    await check("GET", "/admin/clock", "/admin/clock")
    await check("POST", "/admin/clock", "/admin/clock", {"advance": "1h"})
    await check("POST", "/admin/clock", "/admin/clock", {"advance": "1h", "set": "2027-01-01"}, expect=400)
    await check("POST", f"/admin/licenses/{lic}/expire", "/admin/licenses/{license_id}/expire", {"reason": "r"})
    await check("GET", "/admin/licenses", "/admin/licenses", expect=401, auth=False)
    await check("POST", "/admin/faults", "/admin/faults", {"action": "drop", "count": 1}, expect=401, auth=False)


async def test_live_json_endpoint_responses_match_the_document(client, document, keyring, make_device):
    status, _, health = await call(client, "GET", "/healthz", auth=False)
    assert status == 200
    assert_matches(document, "GET", "/healthz", 200, health)

    kid = next(t.kid for t in keyring.catalog.title("demo-movie").tracks if t.track.value == "SD")
    for body, expect in ((clearkey.build_license_request([kid]), 200), (clearkey.build_release([kid]), 200),
                         (b"{}", 400), (clearkey.build_license_request([b"\x01" * 16]), 404)):
        response = await client.post("/clearkey/license", data=body)
        assert response.status == expect
        assert_matches(document, "POST", "/clearkey/license", expect, await response.json())

    device = make_device("L1")
    _, loaded = await acquire(client, device, kind=LicenseKind.PERSISTENT)
    wanted = {"device_id": device.device_id, "content_id": "demo-movie", "license_id": loaded.license_id}
    response = await client.post("/downloads", json=wanted)
    assert response.status == 200
    assert_matches(document, "POST", "/downloads", 200, await response.json())
    response = await client.post("/downloads", json={**wanted, "scheme": "cbcs"})  # not packaged in cbcs
    assert response.status == 404
    assert_matches(document, "POST", "/downloads", 404, await response.json())
    response = await client.post("/downloads", json={"device_id": "x"})
    assert response.status == 400
    assert_matches(document, "POST", "/downloads", 400, await response.json())
