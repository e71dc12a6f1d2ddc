"""The STR-* conformance checks: they pass against our server and fail against one started with
``--no-stream-limits`` (the negative-testing switch), each with the refusal it expected and did not see."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conformance.catalog import load_all, select
from conformance.runner import run_checks, spawned_server
from tests.conftest import KEYS

STREAMING = ("widevine", "playready", "fairplay")


@pytest.fixture(scope="module")
def checks():
    return select(load_all(), only=["STR-*"])


def test_the_stream_checks_pass_against_a_spawned_server(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--spawn", "--only", "STR-*",
                             "--report", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    results = {(r["id"], r["system"]): r for r in json.loads((out / "report.json").read_text())["results"]}
    assert {check_id for check_id, _ in results} == {f"STR-00{i}" for i in range(1, 7)}
    for (check_id, system), r in results.items():
        if system == "clearkey" or (check_id == "STR-005" and system != "widevine"):
            assert r["status"] == "not_applicable" and r["reason"], (check_id, system)
        else:
            assert r["status"] == "passed", (check_id, system, r["reason"])
    assert "no renewal exchange" in results[("STR-001", "clearkey")]["reason"]
    assert results[("STR-003", "playready")]["evidence"]["steps"][2]["answer"].startswith("secure stop")
    assert "lease end acknowledged" in results[("STR-003", "fairplay")]["evidence"]["steps"][2]["answer"]


def test_the_stream_checks_fail_against_a_server_without_stream_limits(checks):
    with spawned_server("--no-stream-limits", keys_dir=KEYS) as server:
        report = run_checks(server.url, checks, systems=list(STREAMING), keys_dir=KEYS,
                            admin_token=server.admin_token, data_dir=server.data_dir)
    outcomes = {(r.check.id, r.system): r for r in report.results}
    for (check_id, system), r in outcomes.items():
        if check_id == "STR-005" and system != "widevine":
            assert r.status == "not_applicable"
            continue
        assert r.status == "failed", (check_id, system, r.status, r.reason)
    assert "expected STREAM_LIMIT_REACHED, observed granted" in outcomes[("STR-001", "playready")].reason
    assert "expected STREAM_EVICTED, observed granted" in outcomes[("STR-004", "fairplay")].reason
