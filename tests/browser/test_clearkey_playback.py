"""Real player: headless Debian Chromium + Shaka Player play media made by
``license-server package`` with licenses from ``/clearkey/license`` on a live
``license-server serve`` process.

Skipped only when DRM_SKIP_BROWSER=1; missing tools fail (see conftest.py).
"""

from __future__ import annotations

import os

import pytest

from license_server.keyring import load_keyring

from conftest import CONTENT, KEYS

pytestmark = pytest.mark.skipif(os.environ.get("DRM_SKIP_BROWSER") == "1", reason="DRM_SKIP_BROWSER=1")

DRM_CATEGORY = 6  # shaka.util.Error.Category.DRM
LICENSE_REQUEST_FAILED = 6007


def kid(track: str) -> bytes:
    title = load_keyring(KEYS).catalog.title(CONTENT)
    return next(t.kid for t in title.tracks if t.track.value == track)


def assert_played(report: dict) -> None:
    assert report["errors"] == [], report
    assert report["ok"], report
    assert report["currentTime"] >= 2.0, report
    assert report["totalVideoFrames"] > 0, report
    assert report["licenseRequests"] >= 1 and set(report["licenseResponses"]) == {200}, report
    assert report["mediaError"] is None, report


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
