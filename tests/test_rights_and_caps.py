"""Content-owner rights and business rules: each cap refuses with its code and recovers.

In-process over real HTTP (aiohttp test client, frozen test clock) for the rules;
real server processes and the real CLIs for concurrency and release.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from license_server.core import entitlements, lifecycle
from license_server.core.entitlements import UsageRules, UsageSnapshot
from license_server.core.model import LicenseKind
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode
from license_server.rights import default_rights
from license_server.store_api import RIGHTS_DOCUMENT
from tests.conftest import START, cli_json, run_cli, tracks
from tests.tokens_support import token

DAY = 86400


def write_rights(store, **changes) -> None:
    """An admin-style overlay (the default namespace's rights document): the shipped rules with ``changes``."""
    rights = default_rights(("stream-only",)).model_dump()
    for key, value in changes.items():
        rights[key] = value
    store.update_document(RIGHTS_DOCUMENT, lambda _: json.dumps(rights))


async def persistent(widevine, device, value=None, *, content="demo-movie", region=None):
    headers = {k: v for k, v in (("X-DRM-Token", value), ("X-DRM-Region", region)) if v}
    from device_emulator.cdm.widevine import WidevineCdm

    cdm = WidevineCdm(device)
    pending = cdm.build_challenge(content, LicenseKind.PERSISTENT, privacy=False)
    response = await widevine.client.post("/widevine/license", data=pending.body, headers=headers)
    await response.read()
    return response.status, response.headers.get(ERROR_CODE_HEADER)


# ------------------------------------------------------------------ units


def test_caps_pure_rules() -> None:
    rules = UsageRules("alice", "d3", device_cap=2, max_active_per_device=2, monthly_allowance=None)
    two_devices = UsageSnapshot(0, frozenset({"d1", "d2"}), 0)
    with pytest.raises(DrmError) as raised:
        entitlements.check_usage(rules, two_devices)
    assert raised.value.code is ErrorCode.DEVICE_LIMIT_REACHED
    entitlements.check_usage(UsageRules("alice", "d2", 2, 2, None), UsageSnapshot(1, frozenset({"d1", "d2"}), 0))
    entitlements.check_usage(rules, UsageSnapshot(0, frozenset({"d1"}), 0))  # a free device slot
    with pytest.raises(DrmError) as raised:
        entitlements.check_usage(rules, UsageSnapshot(2, frozenset({"d3"}), 0))
    assert raised.value.code is ErrorCode.DOWNLOAD_LIMIT_REACHED
    with pytest.raises(DrmError) as raised:
        entitlements.check_usage(UsageRules("alice", "d3", None, None, 15), UsageSnapshot(0, frozenset(), 15))
    assert raised.value.code is ErrorCode.MONTHLY_ALLOWANCE_EXHAUSTED


def test_a_slot_ends_at_the_deadline_plus_the_renewal_recovery() -> None:
    rental = {"can_persist": True, "rental_duration": 30 * DAY}
    assert entitlements.slot_end(rental, START) == START + 30 * DAY
    recovering = {**rental, "renewal_recovery_duration": 3600}
    assert entitlements.slot_end(recovering, START) == START + 30 * DAY + 3600
    assert entitlements.slot_end({"can_persist": True}, START) == entitlements.NEVER
    for policy in (rental, recovering):  # the moment the lifecycle calls it expired, not a second before
        end = entitlements.slot_end(policy, START)
        assert not lifecycle.is_expired(policy, START, end - 1) and lifecycle.is_expired(policy, START, end)


def test_month_start_is_the_calendar_month_in_utc() -> None:
    assert entitlements.month_start(START) == 1798761600  # 2027-01-01T00:00:00Z
    assert entitlements.month_start(1798761600 - 1) == 1796083200  # 2026-12-01


# --------------------------------------------------------------- over HTTP


async def test_device_cap_per_account_then_expiry_frees_a_slot(widevine, make_device, clock) -> None:
    value = token(tier="standard", policy={"persistent": True, "rental": "2d"}, exp=START + 40 * DAY)
    first, second, third = make_device("L1"), make_device("L1"), make_device("L1")
    assert await persistent(widevine, first, value) == (200, None)
    assert await persistent(widevine, second, value) == (200, None)
    assert await persistent(widevine, first, value) == (200, None)  # a device already holding one may add more
    assert await persistent(widevine, third, value) == (403, "DEVICE_LIMIT_REACHED")
    assert await persistent(widevine, third, token(tier="premium")) == (200, None)  # another tier cap... same account
    clock.advance(3 * DAY)
    assert await persistent(widevine, make_device("L1"), value) == (200, None)


async def test_token_overrides_the_device_cap(widevine, make_device) -> None:
    value = token(device_cap=1)
    assert await persistent(widevine, make_device("L1"), value) == (200, None)
    assert await persistent(widevine, make_device("L1"), value) == (403, "DEVICE_LIMIT_REACHED")


async def test_active_downloads_per_device(widevine, store, make_device, settings, clock) -> None:
    write_rights(store, max_active_downloads_per_device=2)
    device = make_device("L1")
    cfg_short = token(policy={"persistent": True, "rental": "1d"}, exp=START + 10 * DAY)
    assert await persistent(widevine, device, cfg_short) == (200, None)
    assert await persistent(widevine, device, cfg_short, content="demo-movie") == (200, None)
    assert await persistent(widevine, device, cfg_short) == (403, "DOWNLOAD_LIMIT_REACHED")
    clock.advance(DAY + 1)  # both expired: expiry frees the slots
    assert await persistent(widevine, device, cfg_short) == (200, None)


async def test_ads_tier_monthly_allowance_resets_with_the_calendar_month(widevine, store, make_device, settings,
                                                                         clock) -> None:
    rights = default_rights(("stream-only",)).model_dump()
    rights["tiers"]["ads"]["monthly_allowance"] = 2
    write_rights(store, tiers=rights["tiers"])
    device = make_device("L1")
    value = token(tier="ads", exp=START + 40 * DAY)
    assert await persistent(widevine, device, value) == (200, None)
    assert await persistent(widevine, device, value) == (200, None)
    assert await persistent(widevine, device, value) == (403, "MONTHLY_ALLOWANCE_EXHAUSTED")
    assert await persistent(widevine, make_device("L1"), value) == (200, None)  # per device
    clock.advance(17 * DAY)  # 2027-02-01: a new month
    assert await persistent(widevine, device, value) == (200, None)


async def test_title_region_rule_with_the_region_header(widevine, store, make_device, settings) -> None:
    write_rights(store, titles={"stream-only": {"downloadable": False}, "demo-movie": {"regions": ["de", "AT"]}})
    assert await persistent(widevine, make_device("L1")) == (403, "REGION_NOT_ALLOWED")
    assert await persistent(widevine, make_device("L1"), region="US") == (403, "REGION_NOT_ALLOWED")
    assert await persistent(widevine, make_device("L1"), region="de") == (200, None)
    assert await persistent(widevine, make_device("L1"), token(region="AT")) == (200, None)
    assert await persistent(widevine, make_device("L1"), token(region="FR"), region="DE") == (403, "REGION_NOT_ALLOWED")


async def test_title_rules_downloadable_windows_and_track_levels(widevine, store, make_device, settings) -> None:
    write_rights(store, titles={
        "demo-episode": {"downloadable": False},
        "demo-movie": {"rental": "5d", "playback": "12h", "tracks": {"SD": {"min_level": "L1"}}},
    })
    assert await persistent(widevine, make_device("L1"), content="demo-episode") == (403, "OFFLINE_NOT_ALLOWED")
    status, headers, loaded, _ = await widevine.acquire(make_device("L1"), kind=LicenseKind.PERSISTENT)
    assert status == 200 and loaded.policy()["rental_duration"] == 5 * DAY
    assert loaded.policy()["playback_duration"] == 12 * 3600
    l3 = make_device("L3")
    status, _, loaded, _ = await widevine.acquire(l3)
    assert status == 200 and tracks(loaded, l3) == ["AUDIO"]  # SD now needs L1


async def test_concurrent_requests_for_the_last_slot_in_process(widevine, make_device, store) -> None:
    import asyncio

    value = token(device_cap=1)
    outcomes = await asyncio.gather(*(persistent(widevine, make_device("L1"), value) for _ in range(6)))
    assert sorted(outcomes, key=str).count((200, None)) == 1
    assert outcomes.count((403, "DEVICE_LIMIT_REACHED")) == 5
    assert len({r.device_id for r in store.licenses(account="alice")}) == 1


# ------------------------------------------------ real processes and CLIs


def issue(server, *args: str) -> str:
    result = run_cli("token", "issue", "--server", server.url, *args, module="license_server.cli")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_two_servers_on_one_store_cannot_both_take_the_last_slot(server_process, tmp_path: Path) -> None:
    """Real concurrency: two processes share the SQLite store; requests race from threads."""
    from device_emulator.acquire import acquire
    from device_emulator.device import Device

    shared = tmp_path / "shared-data"
    first = server_process("--data-dir", str(shared))
    second = server_process("--data-dir", str(shared))
    for round_number in range(3):
        value = issue(first, "--account", f"racer-{round_number}", "--content", "demo-movie", "--persistent",
                      "--device-cap", "1")
        devices = []
        for name in ("a", "b"):
            path = tmp_path / f"r{round_number}-{name}"
            cli_json("create", str(path), "--json")
            devices.append(Device.load(path))
        barrier = threading.Barrier(2)
        results: list[str] = []

        def race(device: Device, server: Any, *, barrier: threading.Barrier = barrier, value: str = value,
                 results: list[str] = results) -> None:
            barrier.wait()
            outcome = acquire(device, server=server.url, content_id="demo-movie", kind=LicenseKind.PERSISTENT,
                              headers={"X-DRM-Token": value})
            results.append(outcome.status if outcome.status == "granted" else outcome.error["code"])

        threads = [threading.Thread(target=race, args=(d, s)) for d, s in zip(devices, (first, second))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(results) == ["DEVICE_LIMIT_REACHED", "granted"], results


def test_release_frees_the_slot_end_to_end(server_process, tmp_path: Path) -> None:
    """The device CLIs with --token: cap reached, remove + release on one device, the other gets in."""
    server = server_process("--require-token")
    value = issue(server, "--account", "bob", "--content", "demo-movie", "--persistent", "--device-cap", "1",
                  "--ttl", "1h")
    phone, tablet = tmp_path / "phone", tmp_path / "tablet"
    for path in (phone, tablet):
        cli_json("create", str(path), "--json")
    args = ["--server", server.url, "--content", "demo-movie", "--type", "persistent", "--json"]
    assert cli_json("acquire", str(phone), *args, "--token", value)["status"] == "granted"
    refused = cli_json("acquire", str(tablet), *args, "--token", value, expect=3)
    assert refused["error"]["code"] == "DEVICE_LIMIT_REACHED"
    no_token = cli_json("acquire", str(tablet), *args, expect=3)
    assert no_token["error"]["code"] == "TOKEN_REQUIRED"
    assert run_cli("remove", str(phone), "--content", "demo-movie", "--server", server.url).returncode == 0
    assert cli_json("acquire", str(tablet), *args, env={"DRM_DEVICE_TOKEN": value})["status"] == "granted"
    with urllib.request.urlopen(server.url + "/healthz") as reply:
        assert json.loads(reply.read())["mode"] == "strict"
