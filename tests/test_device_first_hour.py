"""Issue 20, the device's first hour: one license per title, deterministic choice, ids shown,
JSON errors with --json, where a release went, and no playback window started by a missing tool."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest

from device_emulator.device import Device
from device_emulator.license_store import LicenseStore
from tests.conftest import KEYS, ServerProcess, cli_json, run_cli
from tests.media_support import CONTENT, packaged_media


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    media = packaged_media(tmp_path_factory)
    process = ServerProcess(tmp_path_factory.mktemp("origin") / "data", "--media-dir", str(media))
    yield process
    process.stop()


def make_device(tmp_path: Path, name: str = "phone") -> Path:
    directory = tmp_path / name
    cli_json("create", str(directory), "--keys", str(KEYS), "--json")
    return directory


def acquire(device: Path, server) -> dict:
    return cli_json("acquire", str(device), "--server", server.url, "--content", CONTENT, "--type", "persistent",
                    "--json")


def stored(device: Path) -> list:
    store = LicenseStore(Device.load(device).license_db_path)
    try:
        return store.all()
    finally:
        store.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_download_reuses_the_license_acquire_stored(tmp_path, server) -> None:
    device = make_device(tmp_path)
    granted = acquire(device, server)
    data = cli_json("download", str(device), "--server", server.url, "--content", CONTENT, "--json")
    assert data["license_reused"] and data["license_id"] == granted["license_id"]
    assert len(stored(device)) == 1
    again = cli_json("download", str(device), "--server", server.url, "--content", CONTENT, "--new-license", "--json")
    assert not again["license_reused"] and len(stored(device)) == 2


def test_play_remove_and_renew_choose_deterministically_and_take_license(tmp_path, server) -> None:
    device = make_device(tmp_path)
    first, second = acquire(device, server), acquire(device, server)
    with _same_second(device):
        pass
    status = run_cli("status", str(device))
    assert first["license_id"] in status.stdout and second["license_id"] in status.stdout
    listing = run_cli("licenses", str(device))
    assert first["license_id"] in listing.stdout and second["license_id"] in listing.stdout
    for _ in range(3):  # same receipt second: the newest stored wins, every time
        played = cli_json("play", str(device), "--content", CONTENT, "--json")
        assert played["license_id"] == second["license_id"]
    chosen = cli_json("play", str(device), "--content", CONTENT, "--license", first["license_id"], "--json")
    assert chosen["license_id"] == first["license_id"]
    cli_json("remove", str(device), "--content", CONTENT, "--license", first["license_id"], "--offline", "--json")
    left = [lic for lic in stored(device) if lic.state == "active"]
    assert [lic.license_id for lic in left] == [second["license_id"]]
    missing = run_cli("renew", str(device), "--content", CONTENT, "--server", server.url,
                      "--license", first["license_id"], "--json")
    assert missing.returncode == 3 and json.loads(missing.stdout)["error"]["code"] == "NO_LICENSE"


class _same_second:
    """Give every stored license of the device the same receipt time (the old coin toss)."""

    def __init__(self, device: Path) -> None:
        self.store = LicenseStore(Device.load(device).license_db_path)

    def __enter__(self) -> None:
        with self.store.transaction():
            self.store.db.execute("UPDATE licenses SET received_at = 1800000000")

    def __exit__(self, *exc: object) -> None:
        self.store.close()


@pytest.mark.parametrize("args", [
    ("acquire", "{dev}", "--server", "{url}", "--content", CONTENT, "--json"),
    ("play", "{dev}", "--content", CONTENT, "--stream", "--server", "{url}", "--json"),
    ("sync", "{dev}", "--server", "{url}", "--json"),
])
def test_transport_errors_are_json_with_json(tmp_path, args) -> None:
    device = make_device(tmp_path)
    result = run_cli(*(a.format(dev=device, url=closed_port_url()) for a in args))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["error"]["code"] == "TRANSPORT_ERROR"


def test_usage_errors_are_json_with_json(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli("create", str(blocker / "phone"), "--keys", str(KEYS), "--json")
    assert result.returncode == 2 and json.loads(result.stdout)["error"]["code"] == "USAGE_ERROR"
    device = make_device(tmp_path)
    result = run_cli("play", str(device), "--content", CONTENT, "--stream", "--json")
    assert result.returncode == 2 and json.loads(result.stdout)["error"]["code"] == "USAGE_ERROR"


def test_remove_says_where_the_release_went_and_why(tmp_path, server) -> None:
    device = make_device(tmp_path)
    acquire(device, server)
    other = closed_port_url()
    result = run_cli("remove", str(device), "--content", CONTENT, "--server", other)
    assert result.returncode == 0, result.stderr
    assert f"sent to {server.url}" in result.stdout and "stored with the license" in result.stdout
    data = cli_json("sync", str(device), "--server", server.url, "--json")
    assert data["release_destinations"] == []  # acknowledged already at remove time


def test_play_without_ffmpeg_does_not_start_the_playback_window(tmp_path, server) -> None:
    device = make_device(tmp_path)
    cli_json("download", str(device), "--server", server.url, "--content", CONTENT, "--json")
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python3")
    result = run_cli("play", str(device), "--content", CONTENT, "--json", env={"PATH": str(bare)})
    assert result.returncode == 3 and json.loads(result.stdout)["reason"] == "MEDIA_ERROR"
    assert stored(device)[0].first_played_at is None
    played = cli_json("play", str(device), "--content", CONTENT, "--json")
    assert played["decision"] == "play" and stored(device)[0].first_played_at is not None
