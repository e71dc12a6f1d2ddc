"""Fixtures of the real-browser tests: tools check, packaged media, a static web
server for the page and the media, and a live ``license-server serve`` process.

Requirements (installed by ``.ci/setup``): Debian ``chromium`` and ``ffmpeg``,
Node.js, and ``npm ci`` in ``tests/browser`` (playwright-core, shaka-player,
dashjs, hls.js, shaka-packager). Missing requirements FAIL the tests with a message saying
what to install; only ``DRM_SKIP_BROWSER=1`` skips them.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import write_revocations

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
KEYS = PROJECT / "keys"
NODE_MODULES = HERE / "node_modules"
CHROMIUM = os.environ.get("DRM_CHROMIUM", "/usr/bin/chromium")
CONTENT = "demo-movie"
# The test page of each player (tests/browser/page/) and where its script is served from.
PAGES = {"shaka": "player.html", "dashjs": "dashjs.html", "hlsjs": "hlsjs.html"}
PLAYER_DISTS = {"shaka": ("shaka-player", "dist"), "dashjs": ("dashjs", "dist", "modern", "umd"),
                "hlsjs": ("hls.js", "dist")}


def missing_requirements() -> list[str]:
    problems = []
    if not Path(CHROMIUM).is_file():
        problems.append(f"{CHROMIUM} not found: apt-get install chromium (or set DRM_CHROMIUM)")
    if shutil.which("node") is None:
        problems.append("node not found: apt-get install nodejs npm")
    for package in ("playwright-core", "shaka-player", "dashjs", "hls.js", "shaka-packager"):
        if not (NODE_MODULES / package / "package.json").is_file():
            problems.append(f"{package} not installed: (cd tests/browser && npm ci)")
    if shutil.which("ffmpeg") is None:
        problems.append("ffmpeg not found: apt-get install ffmpeg")
    return problems


@pytest.fixture(scope="session")
def browser_requirements() -> None:
    problems = missing_requirements()
    if problems:
        pytest.fail("browser tests need: " + "; ".join(problems) + " — run `bash .ci/setup`, "
                    "or set DRM_SKIP_BROWSER=1 to skip them", pytrace=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "license_server.cli", *args], capture_output=True, text=True,
                          timeout=300)


# ------------------------------------------------------------- license server

@dataclass
class LicenseServer:
    url: str
    data_dir: Path
    process: subprocess.Popen
    log: Path

    @property
    def license_url(self) -> str:
        return f"{self.url}/clearkey/license"

    def audit(self) -> list[dict]:
        import sqlite3

        with sqlite3.connect(f"file:{self.data_dir / 'license-server.db'}?mode=ro", uri=True) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT * FROM audit WHERE system = 'clearkey' ORDER BY id")]

    def revoke_keys(self, *kids: bytes) -> None:
        write_revocations(self.data_dir, {"key_ids": [k.hex() for k in kids]})

    def clear_revocations(self) -> None:
        write_revocations(self.data_dir, {})


@pytest.fixture(scope="module")
def license_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def license_server(browser_requirements, license_port, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("license-server-data")
    log = data_dir.parent / "license-server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "license_server.cli", "serve", "--port", str(license_port),
         "--data-dir", str(data_dir), "--keys", str(KEYS)],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )
    url = f"http://127.0.0.1:{license_port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"license server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
    yield LicenseServer(url, data_dir, process, log)
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


# ------------------------------------------------------------ packaged media

@pytest.fixture(scope="module")
def media_dir(browser_requirements, license_port, tmp_path_factory) -> Path:
    """``license-server package`` output for CONTENT in cenc and cbcs, with the license URL in the MPD."""
    out = tmp_path_factory.mktemp("media")
    sample = out / "sample.mp4"
    result = run_cli("package", "--sample", "--out", str(sample))
    assert result.returncode == 0, result.stderr
    for scheme in ("cenc", "cbcs"):
        result = run_cli("package", str(sample), "--content", CONTENT, "--out", str(out), "--scheme", scheme,
                         "--keys", str(KEYS), "--license-server", f"http://127.0.0.1:{license_port}/clearkey/license")
        assert result.returncode == 0, result.stderr
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mpd": "application/dash+xml", ".m4s": "video/iso.segment", ".mp4": "video/mp4",
                      ".m3u8": "application/vnd.apple.mpegurl", ".js": "text/javascript"}

    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture(scope="module")
def web_origin(media_dir, tmp_path_factory):
    """A static server: /page (the test pages), /shaka, /dashjs, /hlsjs (the players' dist), /media (the packages)."""
    root = tmp_path_factory.mktemp("site")
    (root / "page").symlink_to(HERE / "page")
    for name, parts in PLAYER_DISTS.items():
        (root / name).symlink_to(NODE_MODULES.joinpath(*parts))
    (root / "media").symlink_to(media_dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# ------------------------------------------------------------------- player

@pytest.fixture
def play(web_origin):
    """Play a manifest in headless Chromium with a player of PAGES (Shaka by default); return the page's report."""

    def run(manifest_path: str, license_url: str | None, *, min_time: float = 2.0, timeout_ms: int = 30000,
            player: str = "shaka") -> dict:
        options = {"pageUrl": f"{web_origin}/page/{PAGES[player]}", "manifestUrl": f"{web_origin}/{manifest_path}",
                   "licenseUrl": license_url, "minTime": min_time, "timeoutMs": timeout_ms, "chromium": CHROMIUM}
        try:
            result = subprocess.run(["node", str(HERE / "play.mjs"), json.dumps(options)], capture_output=True,
                                    text=True, timeout=timeout_ms / 1000 + 60, cwd=HERE)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"the browser driver hung; stdout: {exc.stdout!r} stderr: {exc.stderr!r}", pytrace=False)
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        assert lines, f"driver printed no report (exit {result.returncode}): {result.stderr[-2000:]}"
        report = json.loads(lines[-1])
        assert "driverError" not in report, report
        return report

    return run
