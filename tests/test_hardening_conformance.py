"""Issue 20 honest verdicts: a run in which a critical check could not run is INCOMPLETE and exits non-zero."""

from __future__ import annotations

import json
import subprocess
import sys

from conformance.catalog import FAILED, NOT_APPLICABLE, PASSED, load_all
from conformance.runner import Result, RunReport


def conformance(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance.cli", *args], capture_output=True, text=True, check=False,
                          timeout=300)


def _result(check_id: str, status: str, skipped_for: tuple[str, ...] = ()) -> Result:
    return Result(load_all()[check_id], "widevine", status, "why", {}, 0.0, skipped_for)


def test_verdicts():
    skipped = _result("ATT-008", NOT_APPLICABLE, ("revocation",))
    report = RunReport("t", "now", {}, {}, [_result("ATT-001", PASSED), skipped])
    assert report.verdict == "INCOMPLETE" and not report.ok
    assert "ATT-008/widevine" in report.incomplete_explanation() and "admin token" in report.incomplete_explanation()
    report.allow_incomplete = True
    assert report.verdict == "OK" and report.ok
    inherent = RunReport("t", "now", {}, {}, [_result("ATT-001", NOT_APPLICABLE)])  # the dialect cannot have it
    assert inherent.verdict == "OK"
    high = RunReport("t", "now", {}, {}, [_result("OFF-001", NOT_APPLICABLE, ("test-clock",))])
    assert high.verdict == "OK"  # only critical checks make a run incomplete
    failed = RunReport("t", "now", {}, {}, [skipped, _result("ATT-001", FAILED)])
    assert failed.verdict == "FAILED"


def test_stale_admin_token_is_incomplete_and_allow_incomplete_opts_out(server_process, tmp_path):
    server = server_process("--test-clock")
    stale = conformance("run", "--server", server.url, "--admin-token", "stale-token-" + "0" * 20,
                        "--systems", "widevine", "--only", "ATT-008,ROB-001", "--quiet",
                        "--report", str(tmp_path / "r"))
    assert stale.returncode == 3, stale.stdout + stale.stderr
    assert "INCOMPLETE" in stale.stdout and "ATT-008/widevine" in stale.stderr and "admin token" in stale.stderr
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert doc["verdict"] == "INCOMPLETE" and doc["skipped_critical"] == ["ATT-008/widevine"] and not doc["ok"]
    allowed = conformance("run", "--server", server.url, "--systems", "widevine", "--only", "ATT-008,ROB-001",
                          "--quiet", "--allow-incomplete")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "-> OK" in allowed.stdout and "ATT-008/widevine" in allowed.stdout


def test_list_validates_systems_and_omits_dialects_a_check_does_not_apply_to():
    unknown = conformance("list", "--systems", "drmtoday")
    assert unknown.returncode == 2 and "drmtoday" in unknown.stderr
    listed = conformance("list", "--only", "ATT-001")
    assert listed.returncode == 0
    line = next(line for line in listed.stdout.splitlines() if line.startswith("ATT-001"))
    assert "clearkey" not in line and "widevine" in line
    only_clearkey = conformance("list", "--systems", "clearkey", "--only", "LIC-001")
    assert "widevine" not in only_clearkey.stdout


def test_version():
    result = conformance("--version")
    assert result.returncode == 0 and "drm-conformance" in result.stdout
