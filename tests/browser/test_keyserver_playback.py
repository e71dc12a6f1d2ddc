"""Real player, key-server pipeline: ``license-server package --key-server`` makes Shaka Packager fetch
its keys from our Widevine key API; headless Chromium + Shaka Player then play the result with
Clear Key licenses from the same live server (non-rotated content).

Skipped only when DRM_SKIP_BROWSER=1; missing tools fail (see conftest.py).
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import run_cli

pytestmark = pytest.mark.skipif(os.environ.get("DRM_SKIP_BROWSER") == "1", reason="DRM_SKIP_BROWSER=1")

CONTENT = "ks-browser"


@pytest.fixture(scope="module")
def key_server_package(media_dir, license_server) -> dict:
    result = run_cli("package", str(media_dir / "sample.mp4"), "--content", CONTENT, "--out", str(media_dir),
                     "--key-server", f"{license_server.url}/widevine/cenc/getcontentkey/widevine_test",
                     "--license-server", license_server.license_url, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_shaka_player_plays_key_server_content_with_clear_key(play, license_server, key_server_package):
    report = play(f"media/{CONTENT}/cenc/manifest.mpd", license_server.license_url)
    assert report["errors"] == [] and report["ok"], report
    assert report["currentTime"] >= 2.0 and report["totalVideoFrames"] > 0, report
    assert report["licenseRequests"] >= 1 and set(report["licenseResponses"]) == {200}, report
    statuses = dict(entry.split(":") for entry in report["keyStatuses"])
    sd = next(r["kid"] for r in key_server_package["renditions"] if r["track"] == "SD")
    assert statuses[sd] == "usable"
    grants = [row for row in license_server.audit() if row["event"] == "grant"]
    assert grants and all(row["content_id"] == CONTENT for row in grants)
