"""Real players: headless Debian Chromium with Shaka Player, dash.js and hls.js
play media made by ``license-server package`` (DASH and HLS, cenc and cbcs)
with licenses from ``/clearkey/license`` on a live ``license-server serve``
process.

Skipped only when DRM_SKIP_BROWSER=1; missing tools fail (see conftest.py).
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import CONTENT, KEYS

from license_server.keyring import load_keyring

pytestmark = pytest.mark.skipif(os.environ.get("DRM_SKIP_BROWSER") == "1", reason="DRM_SKIP_BROWSER=1")

DRM_CATEGORY = 6  # shaka.util.Error.Category.DRM
LICENSE_REQUEST_FAILED = 6007


def kid(track: str) -> bytes:
    title = load_keyring(KEYS).catalog.title(CONTENT)
    return next(t.kid for t in title.tracks if t.track.value == track)


def assert_played(report: dict, player: str = "shaka") -> None:
    assert report["player"] == {"shaka": "shaka", "dashjs": "dash.js", "hlsjs": "hls.js"}[player], json.dumps(report)
    assert report["errors"] == [], json.dumps(report)
    assert report["ok"], json.dumps(report)
    assert report["currentTime"] >= 2.0, json.dumps(report)
    assert report["totalVideoFrames"] > 0, json.dumps(report)
    assert report["licenseRequests"] >= 1 and set(report["licenseResponses"]) == {200}, json.dumps(report)
    assert report["mediaError"] is None, json.dumps(report)


def test_cenc_plays_with_clear_key_licenses_from_the_server(play, license_server):
    report = play(f"media/{CONTENT}/cenc/manifest.mpd", license_server.license_url)
    assert_played(report)
    statuses = dict(entry.split(":") for entry in report["keyStatuses"])
    assert statuses[kid("SD").hex()] == "usable"
    grants = [row for row in license_server.audit() if row["event"] == "grant"]
    assert grants and all(row["content_id"] == CONTENT for row in grants)


def test_cbcs_plays_with_the_license_url_taken_from_the_manifest(play, license_server):
    before = len(license_server.audit())
    report = play(f"media/{CONTENT}/cbcs/manifest.mpd", None)  # dashif:Laurl written by --license-server
    assert_played(report)
    assert len(license_server.audit()) > before


def test_revoked_keys_make_playback_fail_with_a_drm_error(play, license_server):
    # Every key of the title is revoked: revoking one rendition's key only makes
    # Shaka drop that rendition (the others still get licenses and play).
    license_server.revoke_keys(kid("AUDIO"), kid("SD"), kid("HD"))
    try:
        report = play(f"media/{CONTENT}/cenc/manifest.mpd", license_server.license_url, timeout_ms=15000)
    finally:
        license_server.clear_revocations()
    assert not report["ok"], report
    drm_errors = [e for e in report["errors"] if e["category"] == DRM_CATEGORY]
    assert drm_errors, report
    assert drm_errors[0]["code"] == LICENSE_REQUEST_FAILED, report
    assert report["totalVideoFrames"] == 0 or report["currentTime"] < 2.0, report
    refusals = [row for row in license_server.audit() if row["event"] == "refusal"]
    assert refusals and refusals[-1]["code"] == "KEY_REVOKED"


# dash.js maps both the DASH-IF (e2719d58) and the common-system (1077efec) ContentProtection
# to org.w3.clearkey and, given an application license URL, prefers the common-system one,
# whose cenc:pssh it then passes to generateRequest("keyids", ...): a TypeError. These run
# with the URL from the application (that failing path) and from the manifest (clearkey:Laurl).
@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
def test_dashjs_plays_packaged_dash_with_the_license_url_of_the_application(play, license_server, scheme):
    before = len(license_server.audit())
    report = play(f"media/{CONTENT}/{scheme}/manifest.mpd", license_server.license_url, player="dashjs")
    assert_played(report, "dashjs")
    assert report["version"].startswith("5."), report
    assert len(license_server.audit()) > before


def test_dashjs_takes_the_license_url_from_the_manifest(play, license_server):
    report = play(f"media/{CONTENT}/cenc/manifest.mpd", None, player="dashjs")
    assert_played(report, "dashjs")


# HLS has no Clear Key license-URL signalling: players are given the URL. hls.js reads the
# KEYFORMAT="org.w3.clearkey" key line (KEYID and data: URI); Shaka Player reads no Clear Key
# key line in HLS and plays with the mapping of page/player.js (hlsClearKeyConfig).
@pytest.mark.parametrize("player", ["hlsjs", "shaka"])
@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
def test_packaged_hls_plays_with_clear_key_licenses(play, license_server, scheme, player):
    before = len(license_server.audit())
    report = play(f"media/{CONTENT}/{scheme}/master.m3u8", license_server.license_url, player=player)
    assert_played(report, player)
    grants = [row for row in license_server.audit()[before:] if row["event"] == "grant"]
    assert grants and all(row["content_id"] == CONTENT for row in grants)
