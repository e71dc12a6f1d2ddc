"""The two downloads end to end: a real server process, devices made and driven by the real CLI."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from device_emulator.media import decrypt_rendition, verify_decodes
from tests.conftest import KEYS, ServerProcess, cli_json, run_cli
from tests.media_support import CONTENT, catalog_keys, packaged_media


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return packaged_media(tmp_path_factory)


@pytest.fixture(scope="module")
def server(tmp_path_factory, media):
    """One server process for the module (devices differ per test, so tests stay independent)."""
    process = ServerProcess(tmp_path_factory.mktemp("origin") / "data", "--media-dir", str(media))
    yield process
    process.stop()


def make_device(tmp_path: Path, name: str, *args: str) -> Path:
    directory = tmp_path / name
    cli_json("create", str(directory), "--keys", str(KEYS), "--json", *args)
    return directory


def download(device: Path, server, *args: str) -> subprocess.CompletedProcess:
    return run_cli("download", str(device), "--server", server.url, "--content", CONTENT, *args)


def on_disk(directory: Path) -> int:
    """Media bytes present (complete files and partial .part files)."""
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file() and p.name != "download.json")


def assert_identical(device_media: Path, package: Path, files: list[dict]) -> None:
    for entry in files:
        assert (device_media / entry["path"]).read_bytes() == (package / entry["path"]).read_bytes(), entry["path"]
    assert not list(device_media.rglob("*.part"))


def test_download_then_decrypt_cenc(tmp_path: Path, server, media: Path) -> None:
    device = make_device(tmp_path, "phone")
    result = download(device, server, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "storage estimate:" in result.stderr and "per hour" in result.stderr
    assert data["status"] == "complete" and data["files"] == 6 and not data["license_reused"]
    assert data["fetched_bytes"] == data["estimated_bytes"] > 100_000
    manifest = json.loads((device / "media" / CONTENT / "download.json").read_text())
    assert manifest["status"] == "complete" and manifest["scheme"] == "cenc" and manifest["quality"] == "standard"
    assert all(f["complete"] for f in manifest["files"])
    assert_identical(device / "media" / CONTENT, media / CONTENT / "cenc", manifest["files"])
    stored = cli_json("licenses", str(device), "--json")
    assert [lic["key_set_id"] for lic in stored] == [manifest["key_set_id"]]
    assert stored[0]["type"] == "persistent" and stored[0]["license_id"] == manifest["license_id"]
    keys = catalog_keys()
    for rendition in manifest["renditions"]:
        base = device / "media" / CONTENT
        clear = decrypt_rendition(base / rendition["init"], [base / s for s in rendition["segments"]],
                                  keys.__getitem__)
        out = tmp_path / f"{rendition['track']}.mp4"
        out.write_bytes(clear)
        verify_decodes(out)


def test_interrupted_download_resumes_with_only_the_remaining_bytes(tmp_path: Path, server, media: Path) -> None:
    device = make_device(tmp_path, "phone")
    first = download(device, server, "--interrupt-after", "150000", "--json")
    assert first.returncode == 1, first.stdout
    assert "run again to resume" in json.loads(first.stdout)["error"]["message"]
    target = device / "media" / CONTENT
    parts = list(target.rglob("*.part"))
    assert len(parts) == 1 and parts[0].stat().st_size > 0
    assert on_disk(target) == 150_000
    assert json.loads((target / "download.json").read_text())["status"] == "in_progress"

    second = download(device, server, "--json")
    assert second.returncode == 0, second.stderr
    data = json.loads(second.stdout)
    assert data["fetched_bytes"] == data["estimated_bytes"] - 150_000  # only what was missing
    assert data["resumed_files"] == [str(parts[0].relative_to(target))[:-len(".part")]]
    assert data["license_reused"]  # the license of the first attempt, not a second one
    assert len(cli_json("licenses", str(device), "--json")) == 1
    manifest = json.loads((target / "download.json").read_text())
    assert manifest["status"] == "complete"
    assert_identical(target, media / CONTENT / "cenc", manifest["files"])


def test_truncated_and_missing_files_are_refetched_exactly(tmp_path: Path, server, media: Path) -> None:
    device = make_device(tmp_path, "phone")
    first = download(device, server)
    assert first.returncode == 0, (first.stdout, first.stderr)
    target = device / "media" / CONTENT
    segment, lost = target / "sd" / "seg_1.m4s", target / "audio" / "seg_2.m4s"
    size, lost_size = segment.stat().st_size, lost.stat().st_size
    half = segment.read_bytes()[: size // 2]
    segment.unlink()
    (target / "sd" / "seg_1.m4s.part").write_bytes(half)
    lost.unlink()
    result = download(device, server, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["fetched_bytes"] == (size - size // 2) + lost_size
    assert data["present_bytes"] == data["estimated_bytes"] - size - lost_size
    assert data["resumed_files"] == ["sd/seg_1.m4s"]
    assert_identical(target, media / CONTENT / "cenc", json.loads((target / "download.json").read_text())["files"])


def test_cbcs_high_quality_download_decodes(tmp_path: Path, server, media: Path) -> None:
    device = make_device(tmp_path, "tablet", "--model", "emulated-tablet-l1")
    result = download(device, server, "--scheme", "cbcs", "--quality", "high", "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((device / "media" / CONTENT / "download.json").read_text())
    assert manifest["scheme"] == "cbcs" and {f["track"] for f in manifest["files"]} == {"AUDIO", "HD"}
    assert_identical(device / "media" / CONTENT, media / CONTENT / "cbcs", manifest["files"])
    hd = next(r for r in manifest["renditions"] if r["track"] == "HD")
    base = device / "media" / CONTENT
    out = tmp_path / "hd.mp4"
    out.write_bytes(decrypt_rendition(base / hd["init"], [base / s for s in hd["segments"]],
                                      catalog_keys().__getitem__))
    verify_decodes(out)


def test_no_license_no_download(tmp_path: Path, server) -> None:
    laptop = make_device(tmp_path, "laptop", "--level", "L3", "--model", "emulated-laptop-l3")
    result = download(laptop, server, "--json")
    assert result.returncode == 3
    data = json.loads(result.stdout)
    assert data["status"] == "refused" and data["error"]["code"] == "SECURITY_LEVEL_TOO_LOW"
    assert not (laptop / "media").exists()


def test_tier_without_download_rights_downloads_nothing(tmp_path: Path, server) -> None:
    device = make_device(tmp_path, "phone")
    result = download(device, server, "--tier", "basic")
    assert result.returncode == 3
    assert "TIER_NOT_ALLOWED" in result.stdout
    assert not list((device / "media").rglob("*.m4s*")) if (device / "media").exists() else True


def test_unpackaged_scheme_and_unreachable_server(tmp_path: Path, server_process, tmp_path_factory) -> None:
    empty = server_process("--media-dir", str(tmp_path / "no-media"))
    device = make_device(tmp_path, "phone")
    result = download(device, empty, "--json")
    assert result.returncode == 3 and json.loads(result.stdout)["error"]["code"] == "MEDIA_NOT_PACKAGED"
    offline = run_cli("download", str(device), "--server", "http://127.0.0.1:9", "--content", CONTENT)
    assert offline.returncode == 1 and "cannot reach" in offline.stderr
    missing = run_cli("download", str(tmp_path / "nowhere"), "--server", empty.url, "--content", CONTENT)
    assert missing.returncode == 2


def test_progress_bar_only_on_a_terminal(tmp_path: Path, server) -> None:
    device = make_device(tmp_path, "phone")
    plain = download(device, server, "--interrupt-after", "100000")
    assert "downloading" not in plain.stderr and "%" not in plain.stderr  # not a TTY: no bar
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "device_emulator.cli", "download", str(device), "--server",
                             server.url, "--content", CONTENT], stdin=subprocess.DEVNULL, stdout=terminal,
                            stderr=terminal, env=os.environ.copy())
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    assert proc.wait(60) == 0
    os.close(controller)
    text = output.decode(errors="replace")
    assert "downloading" in text and "100%" in text and "storage estimate" in text


def test_license_url_shapes_the_downloaded_license(tmp_path: Path, server) -> None:
    """`download --license-url` takes a cfg= policy to the license half of the download."""
    device = make_device(tmp_path, "phone")
    result = download(device, server, "--json", "--license-url", "/widevine/license?cfg=(rental:7200,playback:600)")
    assert result.returncode == 0, result.stderr
    [row] = cli_json("status", str(device), "--json")
    assert row["governing_clock"] == "storage" and row["message"] in ("Available for 2 more hours",
                                                                      "Available for 1 more hour")  # 2 h, not 30 days
    bad = download(make_device(tmp_path, "tablet", "--model", "emulated-tablet-l1"), server, "--json",
                   "--license-url", "/widevine/license?cfg=(nosuchkey:1)")
    assert bad.returncode == 3 and json.loads(bad.stdout)["error"]["code"] == "INVALID_POLICY_OVERRIDE"
