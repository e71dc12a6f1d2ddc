"""The offline lifecycle with FairPlay-style and PlayReady-style licenses: a real server
process (test clock), the real CLIs, time travel on the device clock.

The scenarios are the Widevine-style ones of test_offline_lifecycle.py (storage
window, playback window from first play, removal + destruction record + sync,
lost acknowledgement, clock rollback), parametrized over the other dialects,
plus what is particular to each dialect.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from device_emulator import lifecycle, transport
from device_emulator.device import Device
from device_emulator.license_store import LicenseStore
from license_server.clock import parse_duration
from license_server.store import Store
from tests.conftest import ServerProcess, cli_json, run_cli
from tests.device_cli import device_cli, device_json

SYSTEMS = ["fairplay", "playready"]
PATHS = {"widevine": "/widevine/license", "fairplay": "/fairplay/license", "playready": "/playready/rightsmanager.asmx"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module: the tests move device clocks only, and every test has its own device."""
    process = ServerProcess(tmp_path_factory.mktemp("offline-dialects") / "data", "--test-clock")
    yield process
    process.stop()


@pytest.fixture
def device(tmp_path) -> Path:
    path = tmp_path / "phone"
    device_json("create", str(path), "--json")
    return path


def download(server, device: Path, system: str, cfg: str | None = None, content: str = "demo-movie") -> dict:
    args = ["acquire", str(device), "--server", server.url, "--content", content, "--type", "persistent",
            "--system", system, "--json"]
    if cfg:
        args += ["--license-url", f"{PATHS[system]}?cfg={cfg}"]
    granted = device_json(*args)
    assert granted["status"] == "granted" and granted["key_set_id"], granted
    return granted


def play(device: Path, expect: int = 0, *extra: str) -> dict:
    return device_json("play", str(device), "--content", "demo-movie", "--offline", "--json", *extra, expect=expect)


def status(device: Path) -> list[dict]:
    return device_json("status", str(device), "--json")


def advance(device: Path, amount: str) -> None:
    """Move the device clock (what `device-emulator clock --advance` does; that command has its own tests)."""
    dev = Device.load(device)
    dev.record.clock_offset += parse_duration(amount)
    dev.save()


def server_store(server) -> Store:
    return Store.open(server.data_dir / "license-server.db")


def server_now(server) -> int:
    with urllib.request.urlopen(server.url + "/healthz") as reply:
        return int(json.loads(reply.read())["time"])


# ------------------------------------------------------------------ the two clocks


@pytest.mark.parametrize("system", SYSTEMS)
def test_never_played_plays_on_day_30_and_is_refused_on_day_31(server, device, system):
    download(server, device, system)
    advance(device, "1m")
    [row] = status(device)
    assert (row["system"], row["message"], row["governing_clock"]) == (system, "Available for 29 more days", "storage")
    advance(device, "29d")
    advance(device, "-1m")
    assert status(device)[0]["first_played_at"] is None  # status never starts the playback clock
    advance(device, "23h")
    started = play(device)
    assert started["decision"] == "play" and started["governing_clock"] == "storage"  # storage ends first
    advance(device, "1h")
    refused = play(device, 3)
    assert (refused["reason"], refused["governing_clock"]) == ("STORAGE_WINDOW_EXPIRED", "storage")
    assert set(refused["key_statuses"].values()) == {"expired"}


@pytest.mark.parametrize("system", SYSTEMS)
def test_first_play_on_day_20_ends_after_day_22_eight_days_early(server, device, system):
    download(server, device, system)
    advance(device, "18d")
    advance(device, "23h")
    assert status(device)[0]["message"] == "Available for 11 more days"
    advance(device, "1h")
    started = play(device)
    assert (started["governing_clock"], started["message"]) == ("playback", "Expires in 48 hours")
    assert set(started["key_statuses"].values()) == {"usable"}
    advance(device, "30m")
    assert play(device)["message"] == "Expires in 47 hours"  # the first play is not restarted
    advance(device, "47h")
    advance(device, "31m")
    refused = play(device, 3)
    assert (refused["reason"], refused["governing_clock"]) == ("PLAYBACK_WINDOW_EXPIRED", "playback")
    assert refused["expires_at"] - refused["first_played_at"] == 48 * 3600
    [row] = status(device)
    assert row["playback_window_ends"] < row["storage_window_ends"]  # eight days before storage ends


@pytest.mark.parametrize("system", SYSTEMS)
def test_clock_rollback_refuses_until_sync_and_extends_nothing(server, device, system):
    download(server, device, system)
    first = play(device)["first_played_at"]
    advance(device, "-2d")
    refused = play(device, 3)
    assert refused["reason"] == "CLOCK_ROLLBACK" and set(refused["key_statuses"].values()) == {"status-pending"}
    advance(device, "2d")
    assert play(device, 3)["reason"] == "CLOCK_ROLLBACK"  # stays refused until a sync
    device_json("sync", str(device), "--server", server.url, "--json")
    resumed = play(device)
    assert resumed["first_played_at"] == first and resumed["governing_clock"] == "playback"


# ------------------------------------------------------------ removal and its record


@pytest.mark.parametrize("system", SYSTEMS)
def test_removal_offline_then_sync_releases_on_the_server(server, device, system):
    granted = download(server, device, system)
    removed = run_cli("remove", str(device), "--content", "demo-movie", "--offline")
    assert removed.returncode == 0 and "pending" in removed.stdout
    refused = play(device, 3)
    assert refused["reason"] == "LICENSE_RELEASED" and set(refused["key_statuses"].values()) == {"released"}
    assert status(device)[0]["state"] == "removed"  # the record survives a restart of the emulator
    store = server_store(server)
    assert store.license(granted["license_id"]).state != "released"  # nothing reached the server yet
    store.close()

    assert run_cli("sync", str(device), "--server", "http://127.0.0.1:9").returncode == 1
    synced = cli_json("sync", str(device), "--server", server.url, "--json")
    assert synced["released"] == [granted["key_set_id"]] and synced["release_pending"] == []
    assert cli_json("licenses", str(device), "--json") == []  # purged after the acknowledgement
    assert play(device, 3)["reason"] == "NO_LICENSE"
    store = server_store(server)
    record = store.license(granted["license_id"])
    assert record.state == "released" and record.released_at is not None
    assert [a["event"] for a in store.audit_trail(license_id=granted["license_id"])].count("release") == 1
    store.close()


@pytest.mark.parametrize("system", SYSTEMS)
def test_online_removal_is_acknowledged_at_once(server, device, system):
    granted = download(server, device, system)
    device_json("sync", str(device), "--server", server.url, "--json")  # trusted time, as an online device has
    removed = device_json("remove", str(device), "--content", "demo-movie", "--server", server.url, "--json")
    assert removed["release"]["released"] == [granted["key_set_id"]]
    store = server_store(server)
    assert store.license(granted["license_id"]).state == "released"
    store.close()


@pytest.mark.parametrize("system", SYSTEMS)
def test_lost_acknowledgement_leads_to_a_resend(server, device, system, monkeypatch):
    granted = download(server, device, system)
    dev = Device.load(device)
    lifecycle.remove(dev, "demo-movie")
    real_post = transport.post

    def post_and_lose_the_answer(url, body, **kwargs):
        real_post(url, body, **kwargs)  # the server releases ...
        raise transport.TransportError("connection dropped before the acknowledgement arrived")

    monkeypatch.setattr(transport, "post", post_and_lose_the_answer)
    first = lifecycle.sync(dev, server=server.url)
    assert first.released == [] and first.release_pending[0]["key_set_id"] == granted["key_set_id"]
    assert [r["state"] for r in lifecycle.status(dev)] == ["removed"]
    monkeypatch.setattr(transport, "post", real_post)
    second = lifecycle.sync(dev, server=server.url)  # ... and acknowledges the resend
    assert second.released == [granted["key_set_id"]] and second.not_found == []
    store = server_store(server)
    releases = [a for a in store.audit_trail(license_id=granted["license_id"]) if a["event"] == "release"]
    assert len(releases) == 1  # the repeated report is not double-counted
    store.close()


def test_fairplay_report_from_a_rooted_device_is_refused_and_stays_pending(server, device):
    download(server, device, "fairplay")
    device_cli("remove", str(device), "--content", "demo-movie", "--offline")
    dev = Device.load(device)
    dev.record.flags.rooted = True  # the sync SPC is attested like any SPC: a rooted device is refused
    dev.save()
    result = device_cli("sync", str(device), "--server", server.url, "--json")
    assert result.returncode == 3
    assert json.loads(result.stdout)["release_pending"][0]["error"] == "DEVICE_ROOTED"
    [row] = status(device)
    assert row["state"] == "removed" and row["reason"] == "LICENSE_RELEASED"


def _point_records_at(device: Path, **columns: str) -> None:
    """Edit the device's pending destruction records (what a confused or stale record would hold)."""
    records = LicenseStore(Device.load(device).license_db_path)
    with records.transaction():
        for column, value in columns.items():
            records.db.execute(f"UPDATE destruction_records SET {column} = ?", (value,))
    records.close()


def test_fairplay_report_to_a_server_that_never_issued_it_is_acknowledged_as_not_found(server_process, server,
                                                                                       device):
    granted = download(server, device, "fairplay")
    device_cli("remove", str(device), "--content", "demo-movie", "--offline")
    stranger = server_process("--test-clock")
    _point_records_at(device, license_url=stranger.url + "/fairplay/license")
    synced = device_json("sync", str(device), "--server", stranger.url, "--json")
    # The stranger's signed CKC says it holds no such license for this device: nothing is left to report.
    assert synced["released"] == synced["not_found"] == [granted["key_set_id"]]
    assert device_json("licenses", str(device), "--json") == []
    store = server_store(server)
    assert store.license(granted["license_id"]).state == "issued"  # the issuing server was never told
    store.close()


def test_playready_refused_secure_delete_stays_pending_with_the_code(server, device):
    download(server, device, "playready")
    device_cli("remove", str(device), "--content", "demo-movie", "--offline")
    _point_records_at(device, license_id="00" * 16)  # a license this server never issued
    result = device_cli("sync", str(device), "--server", server.url, "--json")
    assert result.returncode == 3  # an unsigned SOAP fault never purges a record
    assert json.loads(result.stdout)["release_pending"][0]["error"] == "LICENSE_NOT_FOUND"
    assert status(device)[0]["state"] == "removed"


# ------------------------------------------------------------------ binding, selection


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_license_copied_to_another_device_does_not_load(server, device, system, tmp_path):
    download(server, device, system)
    other = tmp_path / "tablet"
    device_json("create", str(other), "--json")
    shutil.copy(device / "licenses.db", other / "licenses.db")
    refused = play(other, 3)
    assert refused["reason"] == "LICENSE_NOT_BOUND" and set(refused["key_statuses"].values()) == {"internal-error"}


def test_system_selects_among_licenses_of_several_dialects(server, device):
    widevine = download(server, device, "widevine")
    playready = download(server, device, "playready")
    assert {row["system"] for row in status(device)} == {"widevine", "playready"}
    device_json("remove", str(device), "--content", "demo-movie", "--system", "playready", "--offline", "--json")
    states = {row["key_set_id"]: row["state"] for row in status(device)}
    assert states == {widevine["key_set_id"]: "active", playready["key_set_id"]: "removed"}
    assert play(device, 0, "--system", "widevine")["decision"] == "play"
    assert play(device, 3, "--system", "playready")["reason"] == "LICENSE_RELEASED"


@pytest.mark.parametrize("system", SYSTEMS)
def test_renewal_is_refused_clearly_for_dialects_without_one(server, device, system):
    download(server, device, system)
    result = device_cli("renew", str(device), "--content", "demo-movie", "--server", server.url, "--json")
    assert result.returncode == 3 and json.loads(result.stdout)["error"]["code"] == "RENEWAL_NOT_SUPPORTED"


# --------------------------------------------------------------- dialect particulars


def test_fairplay_windows_come_from_the_offline_key_block(server, device):
    granted = download(server, device, "fairplay", "(persist:true,rental:7200,playback:600)")
    assert (granted["policy"]["rental_duration"], granted["policy"]["playback_duration"]) == (7200, 600)
    [row] = status(device)
    downloaded = datetime.fromisoformat(row["downloaded_at"].replace("Z", "+00:00"))
    storage = datetime.fromisoformat(row["storage_window_ends"].replace("Z", "+00:00"))
    assert abs((storage - downloaded).total_seconds() - 7200) <= 2 and row["governing_clock"] == "storage"
    assert play(device)["message"] == "Expires in 10 minutes"
    advance(device, "11m")
    assert play(device, 3)["reason"] == "PLAYBACK_WINDOW_EXPIRED"


def test_playready_firstexp_expires_60_seconds_after_first_play(server, device):
    download(server, device, "playready", "(persist:true,firstexp:60)")
    advance(device, "1d")  # the window starts at the first play, not at the download
    started = play(device)
    assert (started["governing_clock"], started["message"]) == ("playback", "Expires in 1 minute")
    advance(device, "50s")
    assert play(device)["message"] == "Expires in less than a minute"
    advance(device, "11s")
    assert play(device, 3)["reason"] == "PLAYBACK_WINDOW_EXPIRED"


def _gmt(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y%m%d%H%M%S")


def test_playready_end_date_is_the_storage_window(server, device):
    end = server_now(server) + 3 * 86400 + 3600
    download(server, device, "playready", f"(persist:true,enddate:{_gmt(end)})")
    [row] = status(device)
    assert row["governing_clock"] == "storage" and row["message"] == "Available for 3 more days"
    device_json("sync", str(device), "--server", server.url, "--json")  # device clock = server clock
    advance(device, "3d")
    assert play(device)["governing_clock"] == "storage"  # an hour left, less than the 48 h playback window
    advance(device, "1h")
    refused = play(device, 3)
    assert refused["reason"] == "STORAGE_WINDOW_EXPIRED" and refused["expires_at"] == end


def test_playready_begin_date_in_the_future_is_not_yet_valid(server, device):
    begin = server_now(server) + 2 * 3600
    download(server, device, "playready", f"(persist:true,begindate:{_gmt(begin)})")
    device_json("sync", str(device), "--server", server.url, "--json")
    early = play(device, 3)
    assert early["reason"] == "NOT_YET_VALID" and set(early["key_statuses"].values()) == {"usable-in-future"}
    assert status(device)[0]["first_played_at"] is None  # a refused play does not start the clock
    advance(device, "2h")
    assert play(device)["decision"] == "play"
