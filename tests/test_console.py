"""``/console``: the shell, and the server-rendered fragments under /admin/console/ (guarded like the admin API)."""

from __future__ import annotations

import pytest

from license_server.admin_models import FaultSpec
from license_server.app import create_app
from license_server.console import queries
from license_server.console.explanations import EXPLANATIONS, explain
from license_server.core.model import LicenseKind
from license_server.errors import ErrorCode
from license_server.namespaces import NAMESPACES
from tests.admin_support import AUTH, admin_settings
from tests.conftest import WidevineExchange


@pytest.fixture
async def admin(aiohttp_client, tmp_path, store, keyring, clock):
    reports = tmp_path / "reports"
    (reports / "run1").mkdir(parents=True)
    (reports / "run1" / "report.html").write_text("<html><body><h1>Conformance OK</h1></body></html>")
    (reports / "run1" / "report.json").write_text('{"passed": 3}')
    settings = admin_settings(tmp_path, reports_dir=reports)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return await aiohttp_client(create_app(settings, store=store, keyring=keyring, clock=clock))


async def page(client, path: str, *, auth: bool = True) -> tuple[int, str]:
    response = await client.get("/admin/console/" + path, headers=AUTH if auth else {})
    return response.status, await response.text()


async def test_shell_holds_no_data_and_fragments_need_the_token(admin):
    response = await admin.get("/console")
    assert response.status == 200 and "Log in" in await response.text()
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert (await admin.get("/console/static/console.js")).status == 200
    for path in ("activity", "licenses", "devices", "clock", "conformance", "inspector", "licenses/x"):
        status, _ = await page(admin, path, auth=False)
        assert status == 401, path


async def test_activity_licenses_and_license_page(admin, make_device, store):
    exchange = WidevineExchange(admin)
    status, _, _, _ = await exchange.acquire(make_device("L1"), "demo-movie", LicenseKind.PERSISTENT)
    assert status == 200
    await exchange.acquire(make_device("L1", rooted=True), "demo-movie")
    status, html = await page(admin, "activity")
    assert status == 200 and "grant" in html and "DEVICE_ROOTED" in html
    assert EXPLANATIONS[ErrorCode.DEVICE_ROOTED][0] in html
    record = store.licenses()[0]
    status, html = await page(admin, "licenses?state=issued&system=widevine")
    assert status == 200 and record.license_id[:12] in html and "1 matching" in html
    status, html = await page(admin, "licenses?state=expired")
    assert "no license matches" in html
    status, html = await page(admin, f"licenses/{record.license_id}")
    assert status == 200 and "License (storage) clock" in html and "Playback clock" in html
    assert "not played yet" in html and 'id="force-expire"' in html
    assert record.secrets and not any(value in html for value in record.secrets.values())  # MAC keys never shown
    latest = queries.activity(store)[0]["id"]
    status, html = await page(admin, f"activity/rows?after={latest}")
    assert status == 200 and html.strip() == ""
    status, _ = await page(admin, "licenses/" + "0" * 32)
    assert status == 404


async def test_devices_clock_conformance_and_inspector_pages(admin, make_device):
    await WidevineExchange(admin).acquire(make_device("L1"), "demo-movie")
    status, html = await page(admin, "devices")
    assert status == 200 and "emulated-phone-l1" in html and "Revoke" in html
    status, html = await page(admin, "clock")
    assert status == 200 and "Advance 30d" in html and "no fault plan" in html
    faults = admin.app[NAMESPACES].get("default").faults
    faults.add(FaultSpec(action="error", error_code=ErrorCode.INJECTED_FAULT, count=2), 0)
    status, html = await page(admin, "clock")
    assert ">INJECTED_FAULT<" in html and "ErrorCode." not in html
    status, html = await page(admin, "conformance")
    assert status == 200 and "run1/report.html" in html and "run1/report.json" in html
    status, html = await page(admin, "conformance/report?name=run1/report.html")
    assert status == 200 and "srcdoc" in html and "Conformance OK" in html
    for bad in ("../../etc/passwd", "/etc/passwd", "run1/missing.html"):
        status, _ = await page(admin, f"conformance/report?name={bad}")
        assert status == 404
    status, html = await page(admin, "inspector")
    assert status == 200 and 'id="inspect-input"' in html


def test_clock_skew_is_explained_in_days():
    explanation, fix = explain("REPLAYED_CHALLENGE",
                               "challenge time is -1814400 s from the server clock (window ±300 s)")
    assert explanation == "device clock 21 days ahead of the server" and "device-emulator sync" in fix
    assert explain("DEVICE_ROOTED")[0] == EXPLANATIONS[ErrorCode.DEVICE_ROOTED][0]
    assert explain("NO_SUCH_CODE")[0] == "unknown code"


def test_license_pages_are_keyset_paginated(store, make_device):
    import json

    with store.transaction():
        for i in range(120):
            store.db.execute(
                "INSERT INTO licenses (license_id, system, device_id, content_id, kind, state, version, kids, tracks, "
                "policy, issued_at, updated_at, secrets) VALUES (?, 'widevine', 'd1', 'demo-movie', 'temporary', "
                "'issued', 1, '[]', '[]', ?, ?, ?, '{}')", (f"{i:032x}", json.dumps({}), i, i))
    first = queries.licenses(store, {"device_id": "d1"}, limit=50)
    second = queries.licenses(store, {"device_id": "d1"}, before=first.next_before, limit=50)
    third = queries.licenses(store, {"device_id": "d1"}, before=second.next_before, limit=50)
    assert first.total == 120 and len(first.rows) == 50 and len(third.rows) == 20 and third.next_before is None
    ids = [r["license_id"] for r in first.rows + second.rows + third.rows]
    assert len(set(ids)) == 120 and ids[0] == f"{119:032x}"


def test_console_bench_command_runs_on_a_small_store():
    from tests.conftest import run_cli

    result = run_cli("console-bench", "--licenses", "300", "--rounds", "1", module="license_server.cli")
    assert result.returncode == 0, result.stderr
    assert "with 300 licenses" in result.stdout and "licenses?state=expired" in result.stdout
    assert "worst p95" in result.stdout


def test_license_totals_are_bounded(store):
    import json

    with store.transaction():
        store.db.conn.executemany(
            "INSERT INTO licenses (license_id, system, device_id, content_id, kind, state, version, kids, tracks, "
            "policy, issued_at, updated_at, secrets) VALUES (?, 'widevine', 'd1', 'demo-movie', 'temporary', "
            "'issued', 1, '[]', '[]', ?, 0, 0, '{}')", [(f"{i:032x}", json.dumps({})) for i in range(1100)])
    assert queries.licenses(store, {"state": "issued"}).total == queries.COUNT_CAP + 1


def test_every_error_code_has_an_explanation_and_a_fix():
    missing = [code.value for code in ErrorCode if code not in EXPLANATIONS]
    assert missing == []
    assert all(text and fix for text, fix in EXPLANATIONS.values())


@pytest.mark.parametrize("remote", [False, True], ids=["loopback-only", "admin-remote"])
async def test_console_follows_the_admin_loopback_rule(aiohttp_server, aiohttp_client, tmp_path, store, keyring,
                                                       clock, remote):
    from tests.admin_support import non_loopback_address

    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    settings = admin_settings(tmp_path, host=address, admin_remote=remote)
    settings.data_dir.mkdir(parents=True)
    server = await aiohttp_server(create_app(settings, store=store, keyring=keyring, clock=clock), host=address)
    client = await aiohttp_client(server)
    shell = await client.get("/console")
    status, _ = await page(client, "activity")
    if remote:
        assert shell.status == 200 and status == 200
    else:
        assert shell.status == 403 and shell.headers["X-DRM-Error-Code"] == "ADMIN_NOT_LOOPBACK"
        assert status == 403


def test_store_console_reads_ignore_unknown_filters(store):
    """The store's read methods behind the console: unknown filter names never reach the SQL."""
    assert store.license_summaries({"policy = 1; --": "x", "state": None}) == []
    assert store.count_licenses({"device_id": ""}, cap=10) == 0
    assert store.audit_since(0) == [] and store.devices(recent=5) == []
