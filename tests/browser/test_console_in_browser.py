"""The web console in headless Debian Chromium (playwright-core) against a live ``license-server serve``:
log in with the token, watch a license acquired by the device emulator appear without reloading,
open it (both clocks), force-expire it (the device's next renewal fails), see a rooted device's
refusal explained, and decode a pasted challenge. Screenshots go to docs/img when
DRM_UPDATE_SCREENSHOTS=1.

Skipped only when DRM_SKIP_BROWSER=1; missing tools fail (see conftest.py).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PROJECT, cli_json, run_cli

pytestmark = pytest.mark.skipif(os.environ.get("DRM_SKIP_BROWSER") == "1", reason="DRM_SKIP_BROWSER=1")
HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("DRM_CHROMIUM", "/usr/bin/chromium")
RENEWABLE = "/widevine/license?cfg=(persist:true,rental:2592000,playback:172800,renew:true,renewdelay:3600)"


class Browser:
    """One Chromium page driven over console_driver.mjs's JSON-lines protocol."""

    def __init__(self) -> None:
        if shutil.which("node") is None or not Path(CHROMIUM).is_file() or \
                not (HERE / "node_modules" / "playwright-core").exists():
            pytest.fail("console browser tests need node, Debian chromium and playwright-core "
                        "(bash .ci/setup, or DRM_SKIP_BROWSER=1)", pytrace=False)
        self.proc = subprocess.Popen(["node", str(HERE / "console_driver.mjs"), json.dumps({"chromium": CHROMIUM})],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE)

    def __call__(self, op: str, **args):
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the browser driver exited ({self.proc.poll()})"
        answer = json.loads(line)
        assert answer["ok"], answer
        return answer["result"]

    def close(self) -> None:
        try:
            assert self.proc.stdin
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


@pytest.fixture
def browser():
    driver = Browser()
    yield driver
    driver.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    if os.environ.get("DRM_UPDATE_SCREENSHOTS") == "1":
        return PROJECT / "docs" / "img"
    return tmp_path


def test_console_end_to_end(server_process, browser, shots, tmp_path):
    reports = tmp_path / "reports" / "nightly"
    reports.mkdir(parents=True)
    (reports / "report.html").write_text("<html><body><h1>drm-conformance: 42 passed</h1></body></html>")
    server = server_process("--test-clock", "--reports-dir", str(reports.parent))
    browser("goto", url=server.url + "/console")
    browser("fill", selector="#token", value="wrong-token-wrong-token")
    browser("click", selector="#login-go")
    browser("waitText", selector="#login-error", text="refused")
    browser("fill", selector="#token", value=server.admin_token)
    browser("click", selector="#login-go")
    browser("waitText", selector="h2", text="Activity")

    # a license acquired by the device emulator shows up in the live view without reloading, within 2 s
    device = tmp_path / "phone"
    cli_json("create", str(device), "--json")
    acquired = cli_json("acquire", str(device), "--server", server.url, "--content", "demo-movie",
                        "--type", "persistent", "--license-url", RENEWABLE, "--json")
    license_id = acquired["license_id"]
    elapsed = browser("waitText", selector="#activity .outcome", text=license_id[:12], timeout=2000)
    assert elapsed <= 2000
    browser("screenshot", path=str(shots / "console-activity.png"))

    # open it: both clocks
    browser("click", selector=f'a[href="#licenses/{license_id}"]')
    browser("waitText", selector="#clocks", text="Playback clock")
    clocks = browser("text", selector="#clocks")
    assert "License (storage) clock" in clocks and "not played yet" in clocks
    assert "29d 23h" in clocks or "30d" in clocks  # 30 days, less the seconds since the grant (wall clock)
    browser("screenshot", path=str(shots / "console-license.png"), fullPage=True)

    # force-expire from the console: the state changes, and the device's next renewal fails
    browser("click", selector="#force-expire")
    browser("waitText", selector="#license-state", text="expired")
    renewal = run_cli("renew", str(device), "--content", "demo-movie", "--server", server.url)
    assert renewal.returncode != 0 and "LICENSE_EXPIRED" in renewal.stdout + renewal.stderr

    # a rooted device's refusal: DEVICE_ROOTED with its explanation
    rooted = tmp_path / "rooted"
    cli_json("create", str(rooted), "--rooted", "--json")
    refused = run_cli("acquire", str(rooted), "--server", server.url, "--content", "demo-movie")
    assert refused.returncode != 0
    browser("click", selector='a[href="#activity"]')
    browser("waitText", selector="#activity .code", text="DEVICE_ROOTED", timeout=3000)
    row = browser("text", selector="#activity tr.event-refusal")
    assert "reports root access" in row and "--allow-compromised-devices" in row
    browser("screenshot", path=str(shots / "console-refusal.png"))

    # the licenses list, filtered
    browser("click", selector='a[href="#licenses"]')
    browser("waitText", selector="h2", text="matching")
    browser("screenshot", path=str(shots / "console-licenses.png"))

    # decode a pasted challenge: what the server would do, with nothing recorded
    challenge = tmp_path / "challenge.bin"
    result = run_cli("challenge", str(device), "--content", "demo-movie", "--out", str(challenge))
    assert result.returncode == 0, result.stderr
    browser("click", selector='a[href="#inspector"]')
    browser("waitText", selector="h2", text="Inspector")
    browser("fill", selector="#inspect-input", value=base64.b64encode(challenge.read_bytes()).decode())
    browser("click", selector="#inspect-go")
    browser("waitText", selector="#inspect-summary", text="LICENSE_REQUEST")
    would = browser("text", selector="#inspect-would")
    assert "The server would answer: grant" in would and "SD" in would
    decoded = json.loads(browser("text", selector="#inspect-json"))
    assert decoded["fields"]["msg"]["LicenseRequest"]["type"] == "NEW"
    browser("screenshot", path=str(shots / "console-inspector.png"), fullPage=True)

    # devices and revocations: revoke the phone, then un-revoke it
    browser("click", selector='a[href="#devices"]')
    browser("click", selector="#devices button[data-post]")
    browser("waitText", selector="#devices", text="revoked")
    # regression: the status line came before the view was drawn again, so a slow view showed the old state
    # under the new status
    browser("delay", url="**/admin/console/devices**", ms=800)
    browser("click", selector="#devices button[data-delete]")
    browser("waitText", selector="#status", text="DELETE /admin/revocations/device/")
    assert "Revoke" in browser("text", selector="#devices")
    assert "revoked" not in browser("text", selector="#devices tbody")

    # clock and faults: advance the test clock, add and remove a fault plan
    browser("click", selector='a[href="#clock"]')
    before = browser("text", selector="#clock-now")
    browser("click", selector='button[data-body=\'{"advance": "1d"}\']')
    browser("waitText", selector="#status", text="POST /admin/clock -> 200")
    assert browser("text", selector="#clock-now") != before
    browser("evaluate", expression="document.querySelector('#fault-form [name=error_code]').value = 'INJECTED_FAULT'")
    browser("fill", selector="#fault-form [name=count]", value="2")
    browser("click", selector="#fault-form button")
    browser("waitText", selector="#faults", text="INJECTED_FAULT")
    browser("screenshot", path=str(shots / "console-clock.png"))
    browser("click", selector="#faults button[data-delete]")
    browser("waitText", selector="#faults", text="no fault plan")

    # conformance reports found under --reports-dir, listed and opened
    browser("click", selector='a[href="#conformance"]')
    browser("click", selector='#reports a[href*="report.html"]')
    browser("waitText", selector="h2", text="nightly/report.html")
    frame = browser("evaluate", expression="document.querySelector('#report-frame').srcdoc")
    assert "42 passed" in frame
