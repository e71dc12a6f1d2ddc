"""``device-emulator challenge`` for every dialect of the registry, and the Clear Key client.

The written file is posted as is by a plain HTTP client (no device code) to a
real server process and answered 200; Clear Key acquires through the CLI, with
no device identity, as the W3C defines it (temporary and persistent-license).
Commands that cannot apply to a dialect are usage errors (exit 2) with JSON.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from license_server import dialects
from license_server.protocols import clearkey
from tests.conftest import ServerProcess
from tests.device_cli import device_cli, device_json


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("challenge") / "data")
    yield process
    process.stop()


@pytest.fixture
def device(tmp_path) -> Path:
    path = tmp_path / "phone"
    device_json("create", str(path), "--json")
    return path


def post(url: str, body: bytes, content_type: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type, **headers})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


@pytest.mark.parametrize("system", dialects.NAMES)
def test_the_written_challenge_posts_as_is_and_is_answered_200(server, device, tmp_path, system):
    out = tmp_path / f"{system}.challenge"
    written = device_json("challenge", str(device), "--system", system, "--content", "demo-movie",
                          "--server", server.url, "--out", str(out), "--json")
    body = out.read_bytes()
    assert written["bytes"] == len(body) > 0 and written["system"] == system
    assert written["license_path"] == dialects.dialect(system).license_path
    status, answer = post(server.url + written["license_path"], body, written["content_type"], written["headers"])
    assert status == 200 and answer
    if system == "clearkey":  # the JSON request of the W3C, and a JWK set back
        assert json.loads(body)["type"] == "temporary" and len(clearkey.parse_license(answer)) >= 1
    if system == "playready":
        assert body.lstrip().startswith(b"<?xml") or b"AcquireLicense" in body


def test_challenge_text_output_says_how_to_post_it(device, tmp_path):
    out = tmp_path / "ck.json"
    ran = device_cli("challenge", str(device), "--system", "clearkey", "--content", "demo-movie",
                     "--type", "persistent", "--out", str(out))
    assert ran.returncode == 0 and "curl --data-binary" in ran.stdout and "no device identity" in ran.stdout
    assert json.loads(out.read_bytes())["type"] == "persistent-license"


def test_fairplay_challenge_without_a_certificate_or_server_is_a_usage_error(device, tmp_path):
    ran = device_cli("challenge", str(device), "--system", "fairplay", "--content", "demo-movie",
                     "--out", str(tmp_path / "spc.bin"), "--json")
    assert ran.returncode == 2 and json.loads(ran.stdout)["error"]["code"] == "NO_APP_CERTIFICATE"
    assert not (tmp_path / "spc.bin").exists()


def test_challenge_for_unknown_content_is_refused(device, tmp_path):
    ran = device_cli("challenge", str(device), "--system", "playready", "--content", "no-such-title",
                     "--out", str(tmp_path / "x.xml"), "--json")
    assert ran.returncode == 3 and json.loads(ran.stdout)["error"]["code"] == "CONTENT_NOT_FOUND"


def test_clearkey_acquire_temporary_has_no_device_identity(server, device):
    granted = device_json("acquire", str(device), "--server", server.url, "--content", "demo-movie",
                          "--system", "clearkey", "--json")
    assert granted["status"] == "granted" and granted["system"] == "clearkey" and granted["type"] == "temporary"
    assert granted["key_set_id"] is None and granted["platform_verification"] == "UNVERIFIED"
    assert "no device identity" in granted["notice"]
    assert granted["keys"] and all(len(k["key"]) == 32 for k in granted["keys"])  # keys readable by the app
    text = device_cli("acquire", str(device), "--server", server.url, "--content", "demo-movie", "--system", "clearkey")
    assert text.returncode == 0 and "no device identity" in text.stdout


def test_clearkey_persistent_license_is_stored_played_and_released(server, device):
    granted = device_json("acquire", str(device), "--server", server.url, "--content", "demo-movie",
                          "--system", "clearkey", "--type", "persistent", "--json")
    assert granted["type"] == "persistent" and granted["key_set_id"].startswith("ksid")
    stored = device_json("licenses", str(device), "--json")
    assert [(s["system"], s["key_set_id"]) for s in stored] == [("clearkey", granted["key_set_id"])]
    played = device_json("play", str(device), "--content", "demo-movie", "--offline", "--system", "clearkey",
                         "--json")
    assert played["decision"] == "play"
    removed = device_json("remove", str(device), "--content", "demo-movie", "--system", "clearkey",
                          "--server", server.url, "--json")
    assert removed["release"]["released"] == [granted["key_set_id"]]


def test_clearkey_acquire_of_unknown_content_is_refused(server, device):
    refused = device_json("acquire", str(device), "--server", server.url, "--content", "no-such-title",
                          "--system", "clearkey", "--json", expect=3)
    assert refused["status"] == "refused" and refused["error"]["code"] == "CONTENT_NOT_FOUND"


@pytest.mark.parametrize("command", [
    ["renew", "--content", "demo-movie", "--server", "http://127.0.0.1:9", "--system", "clearkey"],
    ["download", "--content", "demo-movie", "--server", "http://127.0.0.1:9", "--system", "clearkey"],
])
def test_commands_that_cannot_apply_to_clearkey_are_usage_errors(device, command):
    ran = device_cli(command[0], str(device), *command[1:], "--json")
    assert ran.returncode == 2, (ran.stdout, ran.stderr)
    error = json.loads(ran.stdout)["error"]
    assert error["code"] == "NOT_APPLICABLE" and "clearkey" in error["message"]
    text = device_cli(command[0], str(device), *command[1:])
    assert text.returncode == 2 and "does not apply to clearkey" in text.stderr


def test_clearkey_streaming_playback_with_a_temporary_license(server, device):
    played = device_json("play", str(device), "--content", "demo-movie", "--stream", "--server", server.url,
                         "--system", "clearkey", "--json")
    assert played["decision"] == "play" and played["end_of_playback_report"] is None
    assert device_json("licenses", str(device), "--json") == []  # a temporary license is never stored
