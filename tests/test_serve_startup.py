"""Issue 20 first hour: a `serve` that cannot start leaves existing files alone and says why in one line (exit 2)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KEYS


def serve(data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "license_server.cli", "serve", "--data-dir", str(data_dir), *extra],
                          capture_output=True, text=True, timeout=60)


def assert_one_clear_line(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    (path / "admin-token").write_text("the-running-servers-token-0123456789\n")
    return path


def test_port_in_use_keeps_the_admin_token(data_dir: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = serve(data_dir, "--port", str(port), "--keys", str(KEYS))
    assert_one_clear_line(result, f"port {port}")
    assert (data_dir / "admin-token").read_text() == "the-running-servers-token-0123456789\n"


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_port_out_of_range(data_dir: Path, port: str):
    result = serve(data_dir, "--port", port, "--keys", str(KEYS))
    assert_one_clear_line(result, "port")
    assert (data_dir / "admin-token").read_text() == "the-running-servers-token-0123456789\n"


def test_data_dir_that_is_a_file(tmp_path: Path):
    path = tmp_path / "data"
    path.write_text("not a directory")
    result = serve(path, "--port", "0", "--keys", str(KEYS))
    assert_one_clear_line(result, "data")
    assert path.read_text() == "not a directory"


def test_unreadable_keys(data_dir: Path, tmp_path: Path):
    broken = tmp_path / "keys"
    shutil.copytree(KEYS, broken)
    (broken / "catalog.json").write_text("{ not json")
    result = serve(data_dir, "--port", "0", "--keys", str(broken))
    assert_one_clear_line(result, "keys")
    assert (data_dir / "admin-token").read_text() == "the-running-servers-token-0123456789\n"
    result = serve(data_dir, "--port", "0", "--keys", str(tmp_path / "missing"))
    assert_one_clear_line(result, "keys")


def test_jwks_that_is_not_json(data_dir: Path, tmp_path: Path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text("<html>not json</html>")
    result = serve(data_dir, "--port", "0", "--keys", str(KEYS), "--token-jwks", str(jwks))
    assert_one_clear_line(result, "jwks.json")
    assert (data_dir / "admin-token").read_text() == "the-running-servers-token-0123456789\n"


def test_device_create_on_an_unusable_path(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = subprocess.run([sys.executable, "-m", "device_emulator.cli", "create", str(blocker / "dev"),
                             "--keys", str(KEYS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert blocker.read_text() == "x"
