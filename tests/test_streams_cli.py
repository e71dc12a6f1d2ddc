"""Concurrent-stream limits end to end: real server processes on the test clock, the real CLIs, real HTTP.

Three devices of one account with ``max_streams: 2`` stream in each dialect that has a heartbeat
(Widevine RENEWAL, PlayReady re-acquired short license + Secure Stop, FairPlay lease renewal + lease
end); the third is refused until a lease lapses or a device ends its stream. Also: evict_oldest,
a two-hour stream with injected heartbeat failures, the renewal server URL, 50 concurrent starts
over two workers, the admin view, and the --no-stream-limits switch.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KEYS, free_port, run_cli
from tests.device_cli import device_cli

CONTENT = "demo-movie"
STREAM_DIALECTS = ("widevine", "playready", "fairplay")


def admin(server, method: str, path: str, body: dict | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers={**server.admin_headers, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def issue_token(server, account: str, *extra: str) -> str:
    ran = run_cli("token", "issue", "--account", account, "--content", CONTENT, "--server", server.url,
                  "--keys", str(KEYS), "--ttl", "30d", *extra, module="license_server.cli")
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.strip()


def make_devices(tmp_path: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = tmp_path / name
        ran = device_cli("create", str(path), "--keys", str(KEYS))
        assert ran.returncode == 0, ran.stdout + ran.stderr
        paths.append(path)
    return paths


def play(device: Path, server, token: str, system: str, *extra: str, expect: int | None = None) -> dict:
    ran = device_cli("play", str(device), "--content", CONTENT, "--stream", "--server", server.url, "--system",
                     system, "--token", token, "--json", *extra)
    data = json.loads(ran.stdout)
    if expect is not None:
        assert ran.returncode == expect, data
    return data


def start(device: Path, server, token: str, system: str) -> dict:
    """A stream that opens its session and then stops heartbeating (the device walks away)."""
    return play(device, server, token, system, "--seconds", "0", "--end", "none", expect=0)


def refused_code(device: Path, server, token: str, system: str) -> str:
    data = play(device, server, token, system, "--seconds", "0", "--end", "none", expect=3)
    return data["error"]["code"]


@pytest.mark.parametrize("system", STREAM_DIALECTS)
def test_third_stream_is_refused_until_a_lease_lapses_or_a_device_releases(system, server_process, tmp_path):
    server = server_process("--test-clock")
    token = issue_token(server, f"family-{system}", "--max-streams", "2")
    d1, d2, d3 = make_devices(tmp_path, "d1", "d2", "d3")
    start(d1, server, token, system)
    start(d2, server, token, system)
    assert refused_code(d3, server, token, system) == "STREAM_LIMIT_REACHED"
    streams = admin(server, "GET", f"/admin/streams?account=family-{system}")
    assert streams["count"] == 2 and streams["accounts"][0]["live"] == 2

    # d1 and d2 stop heartbeating: after the lease (60 s) plus the grace (30 s) the slots are free
    admin(server, "POST", "/admin/clock", {"advance": 60})
    assert refused_code(d3, server, token, system) == "STREAM_LIMIT_REACHED"  # still within lease + grace
    admin(server, "POST", "/admin/clock", {"advance": 31})
    start(d3, server, token, system)

    # d1 starts again (2 of 2 with d3): d2 is refused until d1 releases (Secure Stop, lease end), at once
    start(d1, server, token, system)
    assert refused_code(d2, server, token, system) == "STREAM_LIMIT_REACHED"
    ended = play(d1, server, token, system, "--seconds", "0", "--resume", expect=0)
    assert [e["event"] for e in ended["events"]] == ["resume", "heartbeat", "end"]
    start(d2, server, token, system)


@pytest.mark.parametrize("system", STREAM_DIALECTS)
def test_evict_oldest_ends_the_oldest_and_refuses_its_next_heartbeat(system, server_process, tmp_path):
    server = server_process("--test-clock")
    token = issue_token(server, "evictee", "--max-streams", "2", "--stream-mode", "evict_oldest")
    d1, d2, d3 = make_devices(tmp_path, "d1", "d2", "d3")
    oldest = start(d1, server, token, system)
    admin(server, "POST", "/admin/clock", {"advance": 5})
    start(d2, server, token, system)
    start(d3, server, token, system)  # evicts d1's session
    heartbeat = play(d1, server, token, system, "--seconds", "0", "--resume", expect=3)
    assert heartbeat["error"]["code"] == "STREAM_EVICTED"
    every = admin(server, "GET", "/admin/streams?all=true")["accounts"][0]["sessions"]
    evicted = next(s for s in every if s["session_id"] == oldest["license_id"])
    assert evicted["state"] == "evicted" and not evicted["live"]


def test_two_hour_stream_with_heartbeat_failures_on_the_test_clock(server_process, tmp_path):
    server = server_process("--test-clock")
    token = issue_token(server, "binge", "--max-streams", "1", "--renewal-delay", "60", "--renewal-retry", "10",
                        "--renewal-recovery", "60")
    (device,) = make_devices(tmp_path, "tv")
    began = time.monotonic()
    data = play(device, server, token, "widevine", "--seconds", "7200", "--time-travel", "--admin-token",
                server.admin_token, "--fail-heartbeats", "3", expect=0)
    assert time.monotonic() - began < 5
    assert data["result"] == "completed" and data["played"] == 7200
    assert data["heartbeat_failures"] == 3
    # heartbeats every 60 s; the one due at 60 s fails three times (retried every 10 s) and succeeds at 90 s
    assert data["heartbeats"] == 119
    failed = [e["t"] for e in data["events"] if e["event"] == "heartbeat_failed"]
    # the device clock is wall time plus the travelled offset: on a loaded machine a request can take a
    # wall-clock second, so each time may be one later than the schedule
    assert len(failed) == 3 and 60 <= failed[0] <= 61
    assert all(10 <= later - earlier <= 11 for earlier, later in zip(failed, failed[1:]))
    assert data["events"][-1]["event"] == "end"
    assert admin(server, "GET", "/admin/streams?account=binge")["count"] == 0  # released at the end


def test_heartbeat_failures_past_the_recovery_window_stop_the_stream(server_process, tmp_path):
    server = server_process("--test-clock")
    token = issue_token(server, "flaky", "--max-streams", "1", "--renewal-delay", "60", "--renewal-retry", "10")
    (device,) = make_devices(tmp_path, "tv")
    data = play(device, server, token, "widevine", "--seconds", "600", "--time-travel", "--admin-token",
                server.admin_token, "--fail-heartbeats", "10", expect=3)
    assert data["error"]["code"] == "INJECTED_FAULT"
    assert "recovery window" in data["error"]["message"]
    assert data["heartbeats"] == 0 and data["heartbeat_failures"] == 3  # 60, 70, 80; the license ends at 90


def test_heartbeats_go_to_the_renewal_server_url(server_process, tmp_path):
    server = server_process("--test-clock")
    token = issue_token(server, "elsewhere", "--max-streams", "1", "--renewal-delay", "60")
    (device,) = make_devices(tmp_path, "tv")
    nowhere = f"http://127.0.0.1:{free_port()}/widevine/license"
    data = play(device, server, token, "widevine", "--seconds", "300", "--time-travel", "--admin-token",
                server.admin_token, "--license-url", f"{server.url}/widevine/license?cfg=(renewurl:{nowhere})",
                expect=3)
    assert data["events"][0]["event"] == "start"
    assert data["error"]["code"] == "TRANSPORT_ERROR" and "cannot reach" in data["events"][1]["message"]


def test_an_operator_ends_a_session_and_its_heartbeat_is_refused(server_process, tmp_path):
    server = server_process("--test-clock")
    token = issue_token(server, "ops", "--max-streams", "1")
    d1, d2 = make_devices(tmp_path, "d1", "d2")
    opened = start(d1, server, token, "widevine")
    ended = admin(server, "POST", f"/admin/streams/{opened['license_id']}/end", {"reason": "abuse"})
    assert ended["state"] == "ended" and "abuse" in ended["end_reason"]
    start(d2, server, token, "widevine")  # the slot is free at once
    assert play(d1, server, token, "widevine", "--seconds", "0", "--resume", expect=3)["error"]["code"] \
        == "STREAM_EVICTED"
    with pytest.raises(urllib.error.HTTPError) as missing:
        admin(server, "POST", "/admin/streams/unknown/end")
    assert missing.value.code == 404


def test_no_stream_limits_switch_serves_every_stream(server_process, tmp_path):
    server = server_process("--test-clock", "--no-stream-limits")
    token = issue_token(server, "unlimited", "--max-streams", "1")
    for device in make_devices(tmp_path, "d1", "d2", "d3"):
        start(device, server, token, "widevine")
    assert admin(server, "GET", "/admin/streams")["count"] == 0


def test_clear_key_has_no_stream_heartbeat(server_process, tmp_path):
    server = server_process("--test-clock")
    (device,) = make_devices(tmp_path, "d1")
    ran = device_cli("play", str(device), "--content", CONTENT, "--stream", "--server", server.url, "--system",
                     "clearkey", "--seconds", "10", "--json")
    assert ran.returncode == 2 and json.loads(ran.stdout)["error"]["code"] == "NOT_APPLICABLE"


def test_fifty_concurrent_starts_over_two_workers_give_exactly_the_limit(server_process, tmp_path):
    from device_emulator.cdm.widevine import WidevineCdm
    from device_emulator.device import Device
    from license_server.core.model import LicenseKind

    server = server_process("--workers", "2")
    token = issue_token(server, "crowd", "--max-streams", "3")
    devices = [Device.load(path) for path in make_devices(tmp_path, *(f"d{i}" for i in range(5)))]
    bodies = [WidevineCdm(devices[i % 5]).build_challenge(CONTENT, LicenseKind.TEMPORARY, privacy=False).body
              for i in range(50)]
    outcomes: list[tuple[int, str | None]] = []
    gate = threading.Barrier(50)

    def post(body: bytes) -> None:
        request = urllib.request.Request(server.url + "/widevine/license", data=body, method="POST",
                                         headers={"X-DRM-Token": token})
        gate.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                outcomes.append((reply.status, None))
        except urllib.error.HTTPError as exc:
            outcomes.append((exc.code, exc.headers.get("X-DRM-Error-Code")))

    threads = [threading.Thread(target=post, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert outcomes.count((200, None)) == 3, outcomes
    assert outcomes.count((403, "STREAM_LIMIT_REACHED")) == 47
    assert admin(server, "GET", "/admin/streams?account=crowd")["count"] == 3
