"""``license-server inspect``: saved challenges of the four dialects and a PSSH of each system, text and --json."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import KEYS, run_cli
from tests.inspect_support import challenges, pssh_boxes

FORMATS = {"widevine": "widevine.license_request", "fairplay": "fairplay.spc", "playready": "playready.challenge",
           "clearkey": "clearkey.request"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory, keyring):
    """Challenges and PSSH boxes made by the device emulator, saved to files as a user would."""
    from device_emulator.device import Device, DeviceFlags
    from license_server.clock import ControlledClock
    from license_server.core.model import Hdcp, SecurityLevel

    base = tmp_path_factory.mktemp("saved")
    device = Device.create(base / "device", keyring, model=keyring.default_model(SecurityLevel.L1),
                           flags=DeviceFlags(), max_hdcp=Hdcp.V2_2, clock=ControlledClock(frozen=True))
    files = {}
    for name, body in challenges(device, keyring).items():
        files[f"challenge-{name}"] = base / f"{name}.challenge"
        files[f"challenge-{name}"].write_bytes(body)
    for name, body in pssh_boxes(device, keyring).items():
        files[f"pssh-{name}"] = base / f"{name}.pssh.b64"
        files[f"pssh-{name}"].write_text(base64.b64encode(body).decode())
    return files


def inspect(*args: str, stdin: bytes | None = None):
    return run_cli("inspect", *args, "--keys", str(KEYS), module="license_server.cli")


@pytest.mark.parametrize("dialect", list(FORMATS))
def test_cli_decodes_a_saved_challenge_of_each_dialect(saved, dialect):
    result = inspect(str(saved[f"challenge-{dialect}"]), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["format"] == FORMATS[dialect] and document["dialect"] == dialect and document["recognised"]
    text = inspect(str(saved[f"challenge-{dialect}"]))
    assert text.returncode == 0 and f"format: {FORMATS[dialect]}" in text.stdout


@pytest.mark.parametrize("system", ["widevine", "playready", "clearkey", "fairplay"])
def test_cli_decodes_a_pssh_of_each_system(saved, system):
    result = inspect(str(saved[f"pssh-{system}"]), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["format"] == "pssh" and document["input"] == "base64"
    assert document["fields"]["boxes"][0]["dialect"] == system


def test_cli_reads_stdin_and_says_when_it_does_not_recognise(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "license_server.cli", "inspect", "-", "--json", "--no-keys"],
                            input=b"definitely not DRM", capture_output=True, timeout=60, check=False)
    assert result.returncode == 1
    assert json.loads(result.stdout)["summary"] == "not a recognised DRM message"
    result = subprocess.run([sys.executable, "-m", "license_server.cli", "inspect", "-", "--no-keys"],
                            input=b"CAQ=", capture_output=True, timeout=60, check=False)
    assert result.returncode == 0 and b"service certificate request" in result.stdout
