"""Issue 20 side effects: what the quickstart writes is git-ignored; Click is pinned and used without deprecated API."""

from __future__ import annotations

import re
import subprocess
import tomllib

import pytest

from tests.conftest import PROJECT


@pytest.mark.parametrize("path", ["devices/phone/device.json", "media/demo-movie/cenc/manifest.mpd", "sample.mp4",
                                  "out/report.html", "data/admin-token"])
def test_quickstart_outputs_are_ignored(path):
    ran = subprocess.run(["git", "check-ignore", "-q", path], cwd=PROJECT, check=False)
    assert ran.returncode == 0, f"{path} is not git-ignored"


def test_click_is_pinned_to_a_tested_range():
    deps = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
    click = next(d for d in deps if re.match(r"click\b", d))
    assert ">=" in click and "<" in click.replace("<=", ""), click


def test_no_deprecated_click_text_streams():
    offenders = [str(p.relative_to(PROJECT)) for folder in ("license_server", "device_emulator", "conformance")
                 for p in (PROJECT / folder).rglob("*.py") if "get_text_stream" in p.read_text(encoding="utf-8")]
    assert offenders == []


def test_serve_synopsis_names_every_option():
    from license_server.cli import serve

    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    synopsis = readme[readme.index("license-server serve [--host"):]
    synopsis = synopsis[:synopsis.index("```")]
    options = [opt for param in serve.params for opt in param.opts if opt.startswith("--")]
    assert [opt for opt in options if opt not in synopsis] == []


def test_docs_drift_items_are_fixed():
    downloads = (PROJECT / "docs" / "downloads.md").read_text(encoding="utf-8")
    assert "Widevine-style today" not in downloads and "later release" not in downloads
    assert "for 4 s of" not in downloads
    entitlements = (PROJECT / "docs" / "entitlements.md").read_text(encoding="utf-8")
    assert "--renew)" in entitlements
    assert "refused with `LICENSE_EXPIRED`" not in (PROJECT / "docs" / "admin-api.md").read_text(encoding="utf-8")
    # status rounds down: a license a few seconds old has "29 more days" (what the command prints)
    assert "status devices/phone            # Available for 29 more days" in (PROJECT / "README.md").read_text()
