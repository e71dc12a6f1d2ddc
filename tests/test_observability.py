"""Operators' observability over real HTTP: ``GET /metrics``, its guard, its counters, ``X-Request-Id``."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest
from prometheus_client.parser import text_string_to_metric_families

from license_server.app import create_app
from license_server.http_observe import REQUEST_ID_HEADER, request_id
from license_server.logs import JsonFormatter, request_id_var
from license_server.protocols import clearkey
from tests.admin_support import ADMIN_TOKEN, AUTH, admin_settings, non_loopback_address


@pytest.fixture
def settings(tmp_path):
    return admin_settings(tmp_path)


def demo_kids(keyring) -> list[bytes]:
    return [track.kid for track in keyring.catalog.title("demo-movie").tracks]


async def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    response = await client.get("/metrics", headers=AUTH)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# ------------------------------------------------------------------ guard

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-the-admin-token-000"},
                                     {"Authorization": f"Basic {ADMIN_TOKEN}"}], ids=["none", "wrong", "basic"])
async def test_metrics_refuse_a_missing_or_wrong_token(client, headers):
    response = await client.get("/metrics", headers=headers)
    assert response.status == 401
    assert response.headers["X-DRM-Error-Code"] == "ADMIN_UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "drm_" not in await response.text()


@pytest.mark.parametrize("remote", [False, True], ids=["loopback-only", "admin-remote"])
async def test_metrics_refuse_non_loopback_peers_unless_admin_remote(aiohttp_server, aiohttp_client, tmp_path, store,
                                                                     keyring, clock, remote):
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    settings = admin_settings(tmp_path, host=address, admin_remote=remote)
    settings.data_dir.mkdir(parents=True)
    server = await aiohttp_server(create_app(settings, store=store, keyring=keyring, clock=clock), host=address)
    client = await aiohttp_client(server)
    response = await client.get("/metrics", headers=AUTH)
    if remote:
        assert response.status == 200
    else:
        assert response.status == 403 and response.headers["X-DRM-Error-Code"] == "ADMIN_NOT_LOOPBACK"


# --------------------------------------------------------------- counters

async def test_a_real_grant_and_a_real_refusal_move_their_counters(client, keyring):
    before = await scrape(client)
    granted = await client.post("/clearkey/license", data=clearkey.build_license_request(demo_kids(keyring)))
    assert granted.status == 200
    refused = await client.post("/clearkey/license", data=clearkey.build_license_request([b"\x01" * 16]))
    assert refused.status == 404 and refused.headers["X-DRM-Error-Code"] == "KEY_NOT_FOUND"
    malformed = await client.post("/clearkey/license", data=b"{not json")
    assert malformed.status == 400
    after = await scrape(client)
    grants = "drm_licenses_granted_total"
    assert value(after, grants, dialect="clearkey", kind="temporary") \
        == value(before, grants, dialect="clearkey", kind="temporary") + 1
    refusals = "drm_refusals_total"
    assert value(after, refusals, dialect="clearkey", code="KEY_NOT_FOUND") == 1
    assert value(after, refusals, dialect="clearkey", code=malformed.headers["X-DRM-Error-Code"]) == 1
    assert value(after, "drm_http_requests_total", family="clearkey", status="2xx") == 1
    assert value(after, "drm_http_requests_total", family="clearkey", status="4xx") == 2


async def test_guard_refusals_are_counted_under_their_route_family(client):
    await client.get("/metrics")
    samples = await scrape(client)
    assert value(samples, "drm_refusals_total", dialect="metrics", code="ADMIN_UNAUTHORIZED") == 1


async def test_latency_histogram_by_route_family_only(client, keyring):
    await client.post("/clearkey/license", data=clearkey.build_license_request(demo_kids(keyring)))
    await client.get("/healthz")
    await client.get("/no/such/path/dev-1234")
    samples = await scrape(client)
    name = "drm_http_request_duration_seconds"
    assert value(samples, f"{name}_count", family="clearkey") == 1
    assert value(samples, f"{name}_bucket", family="clearkey", le="+Inf") == 1
    assert value(samples, f"{name}_count", family="health") == 1
    assert value(samples, f"{name}_count", family="none") == 1  # an unmatched path: never its raw text
    families = {dict(labels).get("family") for (n, labels) in samples if n.startswith(name)}
    assert families <= {"clearkey", "health", "none", "metrics"}
    assert not any("dev-1234" in str(key) for key in samples)
    assert value(samples, "process_cpu_seconds_total") > 0
    assert ("drm_server_info", (("version", __import__("license_server").__version__),)) in samples


async def test_a_store_error_is_counted_and_answered_as_internal_error(client, store, keyring, monkeypatch):
    def broken(*_args, **_kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "record_grant", broken)
    response = await client.post("/clearkey/license", data=clearkey.build_license_request(demo_kids(keyring)))
    assert response.status == 500 and response.headers["X-DRM-Error-Code"] == "INTERNAL_ERROR"
    samples = await scrape(client)
    assert value(samples, "drm_store_errors_total", error="OperationalError") == 1
    assert value(samples, "drm_refusals_total", dialect="clearkey", code="INTERNAL_ERROR") == 1


# ------------------------------------------------------------- request id

@pytest.mark.parametrize("sent", ["abc-123", "0f" * 32, "trace.id_7"])
async def test_a_sane_client_request_id_is_echoed(client, sent):
    response = await client.get("/healthz", headers={REQUEST_ID_HEADER: sent})
    assert response.headers[REQUEST_ID_HEADER] == sent


@pytest.mark.parametrize("sent", [None, "", "a" * 65, "has space", "semi;colon", "caf\u00e9"])
async def test_an_absent_or_odd_request_id_is_replaced_by_a_fresh_one(client, sent):
    headers = {} if sent is None else {REQUEST_ID_HEADER: sent}
    first = await client.get("/healthz", headers=headers)
    second = await client.get("/healthz", headers=headers)
    for response in (first, second):
        got = response.headers[REQUEST_ID_HEADER]
        assert got != sent and len(got) == 16 and int(got, 16) >= 0
    assert first.headers[REQUEST_ID_HEADER] != second.headers[REQUEST_ID_HEADER]


async def test_every_kind_of_answer_carries_a_request_id(client):
    for response in (await client.get("/no/such/route"), await client.put("/healthz"),
                     await client.get("/admin/licenses"),
                     await client.post("/clearkey/license", data=b"[]")):
        assert len(response.headers[REQUEST_ID_HEADER]) == 16, response.status
        assert response.headers["X-DRM-Mode"] == "development"


def test_request_id_rule():
    assert request_id("ok-id") == "ok-id"
    assert request_id("bad\nid") != "bad\nid"


def test_json_formatter_fields_and_request_id():
    record = logging.LogRecord("license_server.x", logging.INFO, __file__, 1, "granted %s", ("x",), None)
    reset = request_id_var.set("rid-1")
    try:
        doc = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(reset)
    assert doc["level"] == "INFO" and doc["logger"] == "license_server.x" and doc["message"] == "granted x"
    assert doc["request_id"] == "rid-1" and doc["ts"].endswith("+00:00")
