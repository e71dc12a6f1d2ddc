"""The conformance suite end to end: the real CLI against real server processes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from conformance.catalog import Context, Outcome, check as register, REGISTRY, load_all
from conformance.runner import run_one

ATTESTATION = ["ATT-001", "ATT-002", "ATT-003"]


def conformance(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance.cli", *args], capture_output=True, text=True,
                          timeout=300)


def read_reports(directory: Path) -> tuple[dict, ET.Element, str]:
    doc = json.loads((directory / "report.json").read_text())
    junit = ET.parse(directory / "junit.xml").getroot()
    page = (directory / "report.html").read_text()
    return doc, junit, page


def html_counts(page: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"<span data-status='(\w+)' data-count='(\d+)'", page)}


def test_list_prints_the_catalog_as_json():
    result = conformance("list", "--json")
    assert result.returncode == 0
    ids = [c["id"] for c in json.loads(result.stdout)]
    assert {"ATT-001", "ATT-004", "SEC-001", "LIC-003", "OFF-001", "DES-001", "ROB-004"} <= set(ids)
    assert len(ids) == len(set(ids))


def test_spawned_server_passes_every_check_and_reports_agree(tmp_path):
    out = tmp_path / "out"
    result = conformance("run", "--spawn", "--report", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ 1/" in result.stderr  # progress lines
    doc, junit, page = read_reports(out)
    results = doc["results"]
    assert len(results) == len(load_all()) and doc["ok"] is True
    assert {r["status"] for r in results} == {"passed"}
    # JUnit agrees with JSON
    cases = junit.findall("testcase")
    assert junit.tag == "testsuite" and len(cases) == len(results)
    assert int(junit.get("tests")) == len(results) and junit.get("failures") == "0" and junit.get("skipped") == "0"
    assert [c.get("name").split()[0] for c in cases] == [r["id"] for r in results]
    # HTML agrees with both: summary counts, matrix cells and one <details> per result
    assert html_counts(page) == doc["counts"]
    assert page.count("class='cell result' data-status='passed'") == len(results)
    assert page.count("<details") == len(results) and "http://127.0.0.1:" in page


def test_the_suite_fails_against_a_server_that_lets_compromised_devices_through(server_process, tmp_path):
    server = server_process("--allow-compromised-devices", "--test-clock")
    out = tmp_path / "out"
    result = conformance("run", "--server", server.url, "--only", "ATT-*,SEC-001", "--report", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    doc, junit, page = read_reports(out)
    status = {r["id"]: r for r in doc["results"]}
    for check_id in ATTESTATION:
        failed = status[check_id]
        assert failed["status"] == "failed", failed
        assert "granted" in failed["reason"]
        assert failed["evidence"]["observed"]["license"] == "granted"
        assert failed["evidence"]["response"]["status"] == 200
    assert status["ATT-004"]["status"] == "passed"  # the chain is still verified
    failures = {c.get("name").split()[0]: c.find("failure") for c in junit.findall("testcase")}
    assert all(failures[c] is not None and failures[c].get("message") for c in ATTESTATION)
    assert int(junit.get("failures")) == doc["counts"]["failed"] >= 3
    assert html_counts(page) == doc["counts"]
    assert page.count("data-status='failed'") - 1 == doc["counts"]["failed"]  # cells + the summary badge


def test_without_test_clock_offline_checks_are_not_applicable(server_process, tmp_path):
    server = server_process()
    out = tmp_path / "out"
    result = conformance("run", "--server", server.url, "--only", "OFF-*", "--only", "ROB-001", "--report", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    doc, junit, page = read_reports(out)
    status = {r["id"]: r for r in doc["results"]}
    for check_id in ("OFF-001", "OFF-002"):
        assert status[check_id]["status"] == "not_applicable"
        assert "time control" in status[check_id]["reason"]
    assert status["ROB-001"]["status"] == "passed"
    skipped = [c for c in junit.findall("testcase") if c.find("skipped") is not None]
    assert len(skipped) == 2 and junit.get("skipped") == "2"
    assert html_counts(page)["not_applicable"] == 2


def test_an_exception_inside_a_check_is_an_error_never_a_pass(tmp_path):
    @register("TST-900", "raises", systems=("widevine",), severity="low", reference="test")
    def boom(ctx: Context) -> Outcome:
        raise RuntimeError("kaboom")

    try:
        result = run_one(REGISTRY["TST-900"], "widevine", Context("http://127.0.0.1:9", tmp_path))
    finally:
        del REGISTRY["TST-900"]
    assert result.status == "error" and result.counts_as_failed and "kaboom" in result.reason


def test_unreachable_server_fails_instead_of_passing():
    result = conformance("run", "--server", "http://127.0.0.1:9", "--only", "ATT-001,ROB-003", "--quiet")
    assert result.returncode == 1
    assert "0 passed" in result.stdout and "2 errors" in result.stdout


def test_run_needs_exactly_one_target():
    assert conformance("run").returncode == 2
    assert conformance("run", "--spawn", "--server", "http://x").returncode == 2
