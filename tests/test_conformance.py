"""The conformance suite end to end: the real CLI against real server processes.

The suite must pass against our server and must be able to fail: against a
server that lets compromised devices through, without time control, without
admin credentials; and its three report files must agree with each other.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from conformance.catalog import load_all

DEVICE_DIALECTS = ("widevine", "fairplay", "playready")
COMPROMISE = ["ATT-001", "ATT-002", "ATT-003"]
TIME_CHECKS = ["OFF-001", "OFF-002", "OFF-003", "OFF-005", "OFF-006"]


def conformance(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance.cli", *args], capture_output=True, text=True,
                          timeout=300)


def read_reports(directory: Path) -> tuple[dict, ET.Element, str]:
    doc = json.loads((directory / "report.json").read_text())
    junit = ET.parse(directory / "junit.xml").getroot()
    page = (directory / "report.html").read_text()
    return doc, junit, page


def outcomes_json(doc: dict) -> dict[tuple[str, str], str]:
    return {(r["id"], r["system"]): r["status"] for r in doc["results"]}


def outcomes_junit(junit: ET.Element) -> dict[tuple[str, str], str]:
    found = {}
    for case in junit.findall("testcase"):
        key = (case.get("name").split()[0], case.get("classname").removeprefix("conformance."))
        kinds = [child.tag for child in case]
        found[key] = {"failure": "failed", "error": "error", "skipped": "not_applicable"}.get(
            kinds[0] if kinds else "", "passed")
    return found


def outcomes_html(page: str) -> dict[tuple[str, str], str]:
    cells = re.findall(r"<td class='cell result' data-status='(\w+)' data-check='([\w-]+)' data-system='(\w+)'", page)
    details = re.findall(r"<details id='[\w-]+' data-check='([\w-]+)' data-system='(\w+)' data-status='(\w+)'", page)
    assert {(c, s): st for st, c, s in cells} == {(c, s): st for c, s, st in details}
    return {(c, s): st for st, c, s in cells}


def html_counts(page: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"<span data-status='(\w+)' data-count='(\d+)'", page)}


def assert_reports_agree(directory: Path) -> dict:
    """JSON, JUnit and HTML name the same (check, dialect) pairs with the same outcomes and counts."""
    doc, junit, page = read_reports(directory)
    by_json = outcomes_json(doc)
    assert len(by_json) == len(doc["results"])  # no pair twice
    assert outcomes_junit(junit) == by_json
    assert outcomes_html(page) == by_json
    assert html_counts(page) == doc["counts"]
    assert int(junit.get("tests")) == len(by_json)
    assert int(junit.get("failures")) == doc["counts"]["failed"]
    assert int(junit.get("errors")) == doc["counts"]["error"]
    assert int(junit.get("skipped")) == doc["counts"]["not_applicable"]
    return doc


def test_list_prints_the_catalog_as_json():
    result = conformance("list", "--json")
    assert result.returncode == 0
    catalog = json.loads(result.stdout)
    ids = [c["id"] for c in catalog]
    assert len(ids) == len(set(ids)) == len(load_all())
    families = {c["id"].split("-")[0] for c in catalog}
    assert families == {"ATT", "SEC", "LIC", "OFF", "DES", "TOK", "STR", "ROB"}
    by_id = {c["id"]: c for c in catalog}
    for check_id in ("ATT-001", "ATT-008", "ATT-010", "LIC-003"):
        assert set(by_id[check_id]["systems"]) == {*DEVICE_DIALECTS, "clearkey"}
        assert "no device identity" in by_id[check_id]["not_applicable"]["clearkey"] or \
            "Clear Key" in by_id[check_id]["not_applicable"]["clearkey"]
    assert set(by_id["ROB-001"]["systems"]) == {*DEVICE_DIALECTS, "clearkey"} and not by_id["ROB-001"]["not_applicable"]
    assert by_id["OFF-001"]["needs"] == ["test-clock"] and by_id["ATT-008"]["needs"] == ["revocation"]


def test_spawned_server_passes_every_applicable_check_and_reports_agree(tmp_path):
    out = tmp_path / "out"
    result = conformance("run", "--spawn", "--report", str(out))
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "[  1/" in result.stderr or "[ 1/" in result.stderr  # progress lines
    doc = assert_reports_agree(out)
    assert doc["ok"] is True and doc["counts"]["failed"] == doc["counts"]["error"] == 0
    assert doc["capabilities"]["test-clock"] and doc["capabilities"]["revocation"] and doc["capabilities"]["tokens"]
    statuses = outcomes_json(doc)
    # every check runs for every dialect it names
    assert set(statuses) == {(c.id, s) for c in load_all().values() for s in c.systems}
    # what is not applicable is only what cannot apply to the dialect (Clear Key has no device identity,
    # FairPlay and PlayReady have no renewal) or a device lifecycle the adapter lacks; always with the reason
    for r in doc["results"]:
        if r["status"] == "not_applicable":
            assert r["system"] in r["not_applicable"] or "device adapter" in r["reason"], r
            assert r["reason"] == r["not_applicable"].get(r["system"], r["reason"]) and r["reason"]
    for dialect in DEVICE_DIALECTS:
        for check_id in ("ATT-001", "ATT-004", "ATT-008", "ATT-009", "ATT-010", "SEC-001", "LIC-003", "TOK-001"):
            assert statuses[(check_id, dialect)] == "passed", (check_id, dialect)
    for check_id in ("OFF-001", "OFF-005", "OFF-006", "DES-003", "DES-004", "DES-006", "LIC-005"):
        assert statuses[(check_id, "widevine")] == "passed"
    assert statuses[("ATT-001", "clearkey")] == "not_applicable"
    assert {statuses[(f"ROB-00{n}", d)] for n in range(1, 5) for d in (*DEVICE_DIALECTS, "clearkey")} == {"passed"}


def test_the_suite_fails_against_a_server_that_lets_compromised_devices_through(server_process, tmp_path):
    server = server_process("--allow-compromised-devices", "--test-clock")
    out = tmp_path / "out"
    result = conformance("run", "--server", server.url, "--only", "ATT-00[1-4],SEC-001", "--report", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED" in result.stdout
    doc = assert_reports_agree(out)
    results = {(r["id"], r["system"]): r for r in doc["results"]}
    for dialect in DEVICE_DIALECTS:
        for check_id in COMPROMISE:
            failed = results[(check_id, dialect)]
            assert failed["status"] == "failed", failed
            assert "granted" in failed["reason"]
            evidence = failed["evidence"]
            assert evidence["observed"]["license"] == "granted" and evidence["response"]["status"] == 200
            assert evidence["expected"]["error_code"] in ("DEVICE_ROOTED", "BOOTLOADER_UNLOCKED", "APP_NOT_GENUINE")
            assert evidence["request"]["url"].startswith(server.url) and evidence["device"]["flags"]
        assert results[("ATT-004", dialect)]["status"] == "passed"  # the chain is still verified
        assert results[("SEC-001", dialect)]["status"] == "passed"
    _, junit, page = read_reports(out)
    failures = {(c.get("name").split()[0], c.get("classname")): c.find("failure") for c in junit.findall("testcase")}
    assert all(failures[(c, f"conformance.{d}")].get("message") for c in COMPROMISE for d in DEVICE_DIALECTS)
    assert "DEVICE_ROOTED" in failures[("ATT-001", "conformance.widevine")].text  # the evidence rides along
    assert "<details id='ATT-001-fairplay' data-check='ATT-001' data-system='fairplay' data-status='failed'" \
           " style='border-color:#c62828' open>" in page


def test_without_test_clock_or_admin_token_time_and_revocation_checks_are_not_applicable(server_process, tmp_path):
    server = server_process()
    out = tmp_path / "out"
    result = conformance("run", "--server", server.url, "--systems", "widevine", "--only", "OFF-*,ATT-008",
                         "--only", "ROB-001", "--report", str(out))
    assert result.returncode == 3, result.stdout + result.stderr  # INCOMPLETE: critical ATT-008 could not run
    assert "INCOMPLETE" in result.stderr and "ATT-008/widevine" in result.stderr
    doc = assert_reports_agree(out)
    results = {r["id"]: r for r in doc["results"]}
    for check_id in TIME_CHECKS:
        assert results[check_id]["status"] == "not_applicable"
        assert "time control" in results[check_id]["reason"]
    assert results["OFF-004"]["status"] == "passed"  # the device's secure clock needs no server time control
    assert results["ATT-008"]["status"] == "not_applicable" and "--admin-token" in results["ATT-008"]["reason"]
    assert results["ROB-001"]["status"] == "passed"
    assert {r["system"] for r in doc["results"]} == {"widevine"}


def test_the_admin_token_unlocks_revocation_and_a_wrong_one_is_reported(server_process, tmp_path):
    server = server_process("--test-clock")
    good = conformance("run", "--server", server.url, "--admin-token", server.admin_token, "--systems", "fairplay",
                       "--only", "ATT-008,OFF-001", "--report", str(tmp_path / "good"))
    assert good.returncode == 0, good.stdout + good.stderr
    doc = assert_reports_agree(tmp_path / "good")
    assert {r["id"]: r["status"] for r in doc["results"]} == {"ATT-008": "passed", "OFF-001": "passed"}
    assert doc["capabilities"]["revocation_via"].startswith("admin API")
    revoked = doc["results"][0]["evidence"]
    assert revoked["revocation"]["via"] == "POST /admin/revocations" and revoked["observed"]["error_code"] == \
        "DEVICE_REVOKED"
    wrong = conformance("run", "--server", server.url, "--admin-token", "x" * 24, "--systems", "widevine",
                        "--only", "OFF-001,ATT-009", "--report", str(tmp_path / "wrong"))
    assert wrong.returncode == 3, wrong.stdout + wrong.stderr  # INCOMPLETE: critical ATT-009 could not run
    reasons = {r["id"]: r["reason"] for r in json.loads((tmp_path / "wrong" / "report.json").read_text())["results"]}
    assert "HTTP 401" in reasons["OFF-001"] and "wrong admin token" in reasons["OFF-001"]
    assert "wrong admin token" in reasons["ATT-009"]


def test_systems_and_only_select_dialects_and_checks(tmp_path):
    out = tmp_path / "out"
    result = conformance("run", "--spawn", "--systems", "clearkey", "--only", "ATT-*", "--only", "lic-001,DES-00[26]",
                         "--report", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    doc = assert_reports_agree(out)
    statuses = outcomes_json(doc)
    assert {s for _, s in statuses} == {"clearkey"}
    assert {c for c, _ in statuses} == {f"ATT-{n:03d}" for n in range(1, 12)} | {"LIC-001", "DES-002", "DES-006"}
    assert {statuses[(f"ATT-{n:03d}", "clearkey")] for n in range(1, 12)} == {"not_applicable"}
    assert all("Clear Key" in r["reason"] for r in doc["results"] if r["id"].startswith("ATT"))
    assert statuses[("LIC-001", "clearkey")] == statuses[("DES-002", "clearkey")] == "passed"


def test_unreachable_server_errors_instead_of_passing():
    result = conformance("run", "--server", "http://127.0.0.1:9", "--systems", "widevine",
                         "--only", "ATT-001,ROB-003", "--quiet")
    assert result.returncode == 1
    # the license request cannot even be sent (error); the robustness check records "no answer" (failed)
    assert "0 passed, 1 failed, 1 errors" in result.stdout


def test_usage_errors():
    assert conformance("run").returncode == 2
    assert conformance("run", "--spawn", "--server", "http://x").returncode == 2
    assert conformance("run", "--spawn", "--admin-token", "t" * 20).returncode == 2
    unknown = conformance("run", "--spawn", "--systems", "widevine,drmtoday")
    assert unknown.returncode == 2 and "drmtoday" in unknown.stderr
    assert conformance("run", "--spawn", "--only", "NOPE-*").returncode == 2


def test_docs_catalog_table_is_the_generated_one():
    listed = conformance("list", "--markdown")
    assert listed.returncode == 0
    docs = (Path(__file__).resolve().parent.parent / "docs" / "conformance.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- catalog:begin -->\n(.*?)\n<!-- catalog:end -->", docs, re.DOTALL)
    assert block, "docs/conformance.md lacks the generated catalog block"
    assert block.group(1).strip() == listed.stdout.strip(), \
        "regenerate with: drm-conformance list --markdown (between the catalog markers)"
    assert "img/conformance-report.png" in docs
    assert (Path(__file__).resolve().parent.parent / "docs" / "img" / "conformance-report.png").exists()


@pytest.mark.parametrize("check_id", sorted(load_all()))
def test_every_check_is_documented(check_id):
    check = load_all()[check_id]
    assert check.description and check.reference and check.title
    assert check.systems


def test_a_strict_server_is_tested_with_entitlement_tokens(server_process, tmp_path):
    """With --require-token every request needs a token and cfg= is refused: the suite sends test tokens
    and puts the policies it needs into them."""
    server = server_process("--require-token", "--test-clock")
    out = tmp_path / "out"
    result = conformance("run", "--server", server.url, "--admin-token", server.admin_token,
                         "--systems", "widevine,clearkey", "--only", "ATT-001,LIC-001,OFF-001,OFF-005,DES-006",
                         "--only", "ROB-001,TOK-00[14]", "--report", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    doc = assert_reports_agree(out)
    assert doc["capabilities"]["token_mode"] == "strict"
    statuses = outcomes_json(doc)
    assert {status for status in statuses.values() if status != "not_applicable"} == {"passed"}
    assert statuses[("TOK-004", "widevine")] == statuses[("OFF-005", "widevine")] == "passed"
    off = next(r for r in doc["results"] if r["id"] == "OFF-001")
    assert off["evidence"]["request"]["entitlement_token"] and off["evidence"]["request"]["query"] == ""
