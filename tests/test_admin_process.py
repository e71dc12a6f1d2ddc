"""The admin API against real `license-server serve` processes: the generated token, the
--admin-token flag and environment variable, and revocations reaching every dialect."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import KEYS, cli_json, free_port


def admin_request(url: str, token: str | None, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Spawned:
    """A `license-server serve` started exactly as given (no admin token chosen for it)."""

    def __init__(self, tmp_path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = tmp_path / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = tmp_path / "stderr.log"
        tmp_path.mkdir(parents=True, exist_ok=True)
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "license_server.cli", "serve", "--port", str(self.port), "--data-dir",
             str(self.data_dir), "--keys", str(KEYS), *args],
            stdout=subprocess.DEVNULL, stderr=self._stderr,
            env={k: v for k, v in {**os.environ, **(env or {})}.items() if not k.startswith("DRM_SERVER_")
                 or k in (env or {})},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(self.stderr_path.read_text(errors="replace"))

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait(10)
        self._stderr.close()
        return self.stderr_path.read_text(errors="replace")


@pytest.fixture
def spawn(tmp_path):
    started: list[Spawned] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Spawned:
        server = Spawned(tmp_path / f"s{len(started)}", *args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.stop()


def test_generated_token_is_printed_once_and_written_0600(spawn):
    server = spawn("--test-clock")
    token_file = server.data_dir / "admin-token"
    token = token_file.read_text().strip()
    assert len(token) >= 40 and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert admin_request(server.url + "/admin/clock", None)[0] == 401
    assert admin_request(server.url + "/admin/clock", token)[0] == 200
    assert admin_request(server.url + "/admin/faults", token, "POST", {"action": "error", "error_code":
                                                                      "KEY_REVOKED", "count": 1})[0] == 201
    urllib.request.urlopen(server.url + "/healthz").read()
    log = server.stop()
    assert log.count(token) == 1, log  # printed once at start, never logged again


def test_configured_token_flag_and_env_are_never_printed_and_remove_a_stale_file(spawn, tmp_path):
    flag_token = "flag-token-0123456789abcdef"
    server = spawn("--admin-token", flag_token)
    assert not (server.data_dir / "admin-token").exists()
    assert admin_request(server.url + "/admin/licenses", flag_token)[0] == 200
    assert admin_request(server.url + "/admin/licenses", "some-other-token-000000")[0] == 401
    assert flag_token not in server.stop()

    env_token = "env-token-0123456789abcdef"
    stale = tmp_path / "s1" / "data" / "admin-token"
    stale.parent.mkdir(parents=True)
    stale.write_text("an-old-generated-token\n")
    server = spawn(env={"DRM_SERVER_ADMIN_TOKEN": env_token})
    assert not stale.exists()
    assert admin_request(server.url + "/admin/licenses", env_token)[0] == 200
    assert env_token not in server.stop()


def test_weak_admin_token_is_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "license_server.cli", "serve", "--admin-token", "short"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--admin-token" in result.stderr and "Traceback" not in result.stderr


def test_revoked_model_is_refused_by_every_dialect_then_served_again(server_process, tmp_path):
    server = server_process()
    phone = tmp_path / "phone"
    device_id = cli_json("create", str(phone), "--level", "L1", "--json")["device_id"]
    status, entry = admin_request(server.url + "/admin/revocations", server.admin_token, "POST",
                                  {"model": "emulated-phone-l1", "reason": "compromised model"})
    assert status == 201 and entry["value"] == "7001"
    for system in ("widevine", "playready", "fairplay"):
        refused = cli_json("acquire", str(phone), "--server", server.url, "--content", "demo-movie",
                           "--system", system, "--json", expect=3)
        assert refused["error"]["code"] == "DEVICE_REVOKED", (system, refused)
    status, _ = admin_request(server.url + "/admin/revocations/model/emulated-phone-l1", server.admin_token,
                              "DELETE")
    assert status == 200
    granted = cli_json("acquire", str(phone), "--server", server.url, "--content", "demo-movie", "--json")
    assert granted["status"] == "granted"
    status, shown = admin_request(server.url + f"/admin/devices/{device_id}", server.admin_token)
    assert status == 200 and shown["revoked"] is False and len(shown["licenses"]) == 1
