"""The rights and business-rule checks (TOK-005 .. TOK-010): they pass against our server, fail against a
server that does not enforce the rule they check, are not applicable without the access they need, and
always put the target's rights (and server clock) back.

The failing targets are our own server, in this process over real HTTP, with one rule switched off by
monkeypatching the pure rule function it calls; the runner then observes a grant where the rule demands a
refusal.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conformance.catalog import ERROR, FAILED, NOT_APPLICABLE, PASSED, REGISTRY, check, load_all
from conformance.checks_rights import next_month
from conformance.rights_admin import rights_changed
from conformance.runner import run_checks, run_one
from license_server.app import create_app
from license_server.clock import ControlledClock, SystemClock, from_iso
from license_server.core import entitlements
from license_server.settings import Settings
from license_server.store import Store

KEYS = Path(__file__).resolve().parent.parent / "keys"
ADMIN = "conformance-rights-admin-token"
NEW = ["TOK-005", "TOK-006", "TOK-007", "TOK-008", "TOK-009", "TOK-010"]


class Target:
    """Our server in this process (real HTTP on loopback) and how to read its admin API."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def admin(self, path: str, doc: dict | None = None, method: str | None = None) -> dict:
        """An admin API call, from a worker thread (the server answers on this test's loop)."""
        return await asyncio.to_thread(self.admin_blocking, path, doc, method)

    def admin_blocking(self, path: str, doc: dict | None = None, method: str | None = None) -> dict:
        request = urllib.request.Request(self.url + path, data=json.dumps(doc).encode() if doc else None,
                                         method=method, headers={"Authorization": f"Bearer {ADMIN}",
                                                                 "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    async def run(self, ids: list[str], systems: list[str], *, admin_token: str | None = ADMIN) -> dict:
        """Run the checks from a worker thread (the runner blocks; the server runs on this loop)."""
        checks = [load_all()[i] for i in ids]
        report = await asyncio.to_thread(run_checks, self.url, checks, systems=systems, keys_dir=KEYS,
                                         admin_token=admin_token)
        return {(r.check.id, r.system): r for r in report.results}


@pytest.fixture
def target(aiohttp_server, tmp_path, keyring):
    stores: list[Store] = []

    async def start(*, test_clock: bool = True) -> Target:
        settings = Settings(data_dir=tmp_path / "server-data", keys_dir=KEYS, test_clock=test_clock,
                            admin_token=ADMIN)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store.memory()
        stores.append(store)
        clock = ControlledClock() if test_clock else SystemClock()
        server = await aiohttp_server(create_app(settings, store=store, keyring=keyring, clock=clock))
        return Target(str(server.make_url("")).rstrip("/"))

    yield start
    for store in stores:
        store.close()


def conformance(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance.cli", *args], capture_output=True, text=True,
                          timeout=300)


# ------------------------------------------------------------------ passes against our server


def test_the_rights_checks_pass_against_a_spawned_server(tmp_path):
    out = tmp_path / "out"
    result = conformance("run", "--spawn", "--only", "TOK-00[5-9],TOK-010", "--report", str(out))
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    doc = json.loads((out / "report.json").read_text())
    assert doc["capabilities"]["rights"] is True
    results = {(r["id"], r["system"]): r for r in doc["results"]}
    assert {i for i, _ in results} == set(NEW)
    for (check_id, system), r in results.items():
        if system == "clearkey" and check_id in ("TOK-005", "TOK-006", "TOK-010"):
            assert r["status"] == "not_applicable" and "Clear Key has no device identity" in r["reason"]
            continue
        assert r["status"] == "passed", (check_id, system, r["reason"])
        steps = r["evidence"]["steps"]
        assert steps and all(s["ok"] for s in steps)
        assert len(r["evidence"]["expected"]) == len(r["evidence"]["observed"]) == len(steps)
        if check_id != "TOK-007":  # every other one changed the rights, and put them back
            change = r["evidence"]["rights_change"]
            assert change["now_in_force"] and change["restored"]["equal_to_saved"] is True
    cap = results[("TOK-005", "fairplay")]["evidence"]
    assert [s["observed"] for s in cap["steps"] if "observed" in s] == [
        "granted", "refused DOWNLOAD_LIMIT_REACHED", "release acknowledged", "granted",
        "refused DOWNLOAD_LIMIT_REACHED", "storage window passed", "granted"]
    assert cap["rights_change"]["now_in_force"] == {"max_active_downloads_per_device": [100, 1]}
    allowance = results[("TOK-006", "playready")]["evidence"]
    assert allowance["observed"][2] == "500 MONTHLY_ALLOWANCE_EXHAUSTED"  # a SOAP fault, as PlayReady answers
    assert allowance["months"]["after"] > allowance["months"]["downloads"]
    tracks = results[("TOK-010", "fairplay")]["evidence"]["steps"]
    assert "SD" in tracks[0]["tracks"] and "SD" not in tracks[2]["tracks"] and "SD" in tracks[4]["tracks"]


# ------------------------------------------------------------------ fails where the rule is not enforced


def _ignore_downloadable(real):
    def authorize(entitlement, *, rights, **kwargs):
        return real(entitlement, rights=rights.model_copy(update={"downloadable": True}), **kwargs)
    return authorize


def _ignore_title_tracks(real):
    def title_overrides(rights):
        return real(rights.model_copy(update={"tracks": {}}))
    return title_overrides


NOT_ENFORCED = {  # rule switched off -> {check: the refusal it expected and did not see}
    "caps": ("check_usage", lambda real: lambda *a, **k: None,
             {"TOK-005": "DOWNLOAD_LIMIT_REACHED", "TOK-006": "MONTHLY_ALLOWANCE_EXHAUSTED"}, ["widevine"]),
    "regions": ("check_region", lambda real: lambda *a, **k: None,
                {"TOK-007": "REGION_NOT_ALLOWED", "TOK-008": "REGION_NOT_ALLOWED"}, ["widevine", "clearkey"]),
    "downloadable": ("authorize", _ignore_downloadable, {"TOK-009": "OFFLINE_NOT_ALLOWED"},
                     ["fairplay", "clearkey"]),
    "tracks": ("title_overrides", _ignore_title_tracks, {"TOK-010": "no SD key"}, ["playready"]),
}


@pytest.mark.parametrize("rule", sorted(NOT_ENFORCED))
async def test_the_checks_fail_against_a_server_that_does_not_enforce_the_rule(target, monkeypatch, rule):
    name, disable, expected, systems = NOT_ENFORCED[rule]
    monkeypatch.setattr(entitlements, name, disable(getattr(entitlements, name)))
    server = await target()
    rights_before = await server.admin("/admin/rights")
    clock_before = (await server.admin("/admin/clock"))["now"]
    results = await server.run(sorted(expected), systems)
    for (check_id, system), result in results.items():
        assert result.status == FAILED, (check_id, system, result.reason)
        assert expected[check_id] in result.reason and ("observed granted" in result.reason
                                                       or check_id == "TOK-010"), result.reason
        wrong = next(s for s in result.evidence["steps"] if not s["ok"])  # the evidence names the step
        if check_id == "TOK-010":
            assert "no SD key" in wrong["step"] and "SD" in wrong["observed"]  # the L3 device still got SD
        else:
            assert expected[check_id] in wrong["expected"] and wrong["observed"] == "granted"
            assert wrong["response"]["status"] == 200 if "response" in wrong else wrong["acquire"]["license_id"]
        if check_id != "TOK-007":
            assert result.evidence["rights_change"]["restored"]["equal_to_saved"] is True
    # a failed check still put everything back
    assert await server.admin("/admin/rights") == rights_before
    assert abs((await server.admin("/admin/clock"))["now"] - clock_before) < 30


# ------------------------------------------------------------------ not applicable, with the reason


async def test_without_admin_access_the_rights_checks_are_not_applicable(target):
    server = await target()
    results = await server.run(NEW, ["widevine"], admin_token="wrong-admin-token-0123456789")
    for check_id in ("TOK-005", "TOK-008", "TOK-009", "TOK-010"):
        result = results[(check_id, "widevine")]
        assert result.status == NOT_APPLICABLE and "GET /admin/rights answered 401" in result.reason
        assert "wrong admin token" in result.reason
    assert "time control" in results[("TOK-006", "widevine")].reason
    assert results[("TOK-007", "widevine")].status == PASSED  # a token claim needs no admin access


async def test_without_time_control_the_expiry_is_forced_and_the_allowance_is_not_applicable(target):
    server = await target(test_clock=False)
    results = await server.run(["TOK-005", "TOK-006"], ["widevine", "clearkey"])
    cap = results[("TOK-005", "widevine")]
    assert cap.status == PASSED, cap.reason
    expiry = next(s for s in cap.evidence["steps"] if s["step"].endswith("expires"))
    assert expiry["via"].startswith("POST /admin/licenses/") and "no time control" in expiry["via"]
    allowance = results[("TOK-006", "widevine")]
    assert allowance.status == NOT_APPLICABLE and "time control" in allowance.reason
    for check_id in ("TOK-005", "TOK-006"):
        result = results[(check_id, "clearkey")]
        assert result.status == NOT_APPLICABLE and "no device identity" in result.reason


# ------------------------------------------------------------------ month boundary, restoring


async def test_the_allowance_check_starts_in_the_next_month_when_the_month_is_about_to_end(target):
    server = await target()
    end_of_january = from_iso("2027-01-31T23:30:00Z")
    await server.admin("/admin/clock", {"set": "2027-01-31T23:30:00Z"}, method="POST")
    results = await server.run(["TOK-006"], ["widevine"])
    result = results[("TOK-006", "widevine")]
    assert result.status == PASSED, result.reason
    assert result.evidence["months"] == {"downloads": "2027-02", "after": "2027-03"}
    assert abs((await server.admin("/admin/clock"))["now"] - end_of_january) < 30  # moved back


def test_next_month():
    assert next_month(from_iso("2027-12-31T23:59:59Z")) == from_iso("2028-01-01T00:00:00Z")
    assert next_month(from_iso("2027-02-01T00:00:00Z")) == from_iso("2027-03-01T00:00:00Z")


async def test_the_rights_are_restored_when_a_check_crashes_inside_the_change(target, tmp_path):
    server = await target()
    before = await server.admin("/admin/rights")

    def crash(ctx):
        def lower(doc):
            doc["max_active_downloads_per_device"] = 0
        with rights_changed(ctx, lower):
            assert server.admin_blocking("/admin/rights")["max_active_downloads_per_device"] == 0
            raise RuntimeError("the check broke half-way")

    check("TST-950", "temporary", systems=("widevine",), severity="low", reference="test")(crash)
    try:
        from conformance.catalog import Context

        ctx = Context(server.url, tmp_path, keys_dir=KEYS, admin_token=ADMIN)
        result = await asyncio.to_thread(run_one, REGISTRY["TST-950"], "widevine", ctx)
    finally:
        REGISTRY.pop("TST-950", None)
    assert result.status == ERROR and "broke half-way" in result.reason
    assert await server.admin("/admin/rights") == before
