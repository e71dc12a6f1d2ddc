"""`license-server bench`: the load generator's HTTP reading, and a short real run."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from license_server.bench import _read_response
from tests.conftest import run_cli


def read(raw: bytes) -> tuple[int, str | None, bytes]:
    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        answer = await _read_response(reader)
        return (*answer, await reader.read())

    return asyncio.run(go())


def test_response_reading_keeps_the_connection_in_step() -> None:
    first = b"HTTP/1.1 403 Forbidden\r\nX-DRM-Error-Code: DEVICE_REVOKED\r\nContent-Length: 5\r\n\r\nabcde"
    second = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    status, code, rest = read(first + second)
    assert (status, code) == (403, "DEVICE_REVOKED") and rest == second


def test_a_short_benchmark_against_a_spawned_two_worker_server() -> None:
    result = run_cli("bench", "--workers", "2", "--duration", "1", "--requests", "300", "--devices", "2",
                     "--concurrency", "4", module="license_server.cli")
    assert result.returncode == 0, result.stderr
    granted = int(re.search(r"licenses granted\s+(\d+)", result.stdout).group(1))
    assert granted > 0 and re.search(r"errors\s+0\b", result.stdout)
    assert re.search(r"throughput\s+\d+ licenses/s", result.stdout) and "latency p99" in result.stdout


def test_every_dialect_short_runs_with_json() -> None:
    import json

    from license_server import dialects

    for system in dialects.NAMES:
        result = run_cli("bench", "--system", system, "--duration", "1", "--requests", "60", "--devices", "2",
                         "--concurrency", "2", "--json", module="license_server.cli")
        assert result.returncode == 0, (system, result.stderr)
        report = json.loads(result.stdout)
        assert report["granted"] > 0 and report["errors"] == {}, system
        assert {"licenses_per_s", "p50_ms", "p95_ms", "p99_ms", "error_rate"} <= set(report)


def test_persistent_run_raises_the_device_cap_of_its_own_server() -> None:
    import json

    # one device, more persistent licenses than the shipped cap of 100 active per device
    result = run_cli("bench", "--type", "persistent", "--duration", "60", "--requests", "110", "--devices", "1",
                     "--concurrency", "4", "--json", module="license_server.cli")
    assert result.returncode == 0, result.stderr
    assert "raised the per-device caps" in result.stderr
    report = json.loads(result.stdout)
    assert report["granted"] == 110 and report["errors"] == {}


def test_more_than_one_percent_errors_exits_non_zero(server_process) -> None:
    server = server_process("--require-token")  # every license request without a token is refused
    result = run_cli("bench", "--server", server.url, "--system", "clearkey", "--duration", "1", "--requests", "20",
                     "--devices", "1", "--concurrency", "2", module="license_server.cli")
    assert result.returncode == 1
    assert "TOKEN_REQUIRED" in result.stdout and "above 1%" in result.stderr


def test_a_server_clock_that_differs_is_detected_and_explained() -> None:
    from device_emulator.bench_dialects import explain_skew

    assert explain_skew(2) is None and explain_skew(-5) is None
    ahead, behind = explain_skew(3600), explain_skew(-120)
    assert ahead and "3600 s ahead" in ahead and "freshness window" in ahead
    assert behind and "120 s behind" in behind


def test_clock_skew_is_read_from_healthz(server_process) -> None:
    import json
    import urllib.request

    from device_emulator.bench_dialects import clock_skew

    server = server_process("--test-clock")
    assert abs(clock_skew(server.url)) <= 2
    request = urllib.request.Request(server.url + "/admin/clock", data=json.dumps({"advance": 7200}).encode(),
                                     headers={**server.admin_headers, "Content-Type": "application/json"},
                                     method="POST")
    urllib.request.urlopen(request).close()
    assert 7190 <= clock_skew(server.url) <= 7210


def test_spawn_server_serves_the_baseline_tree_it_is_given(tmp_path) -> None:
    """Regression: ``python -m`` put this tree's working directory first on sys.path, so a --baseline
    server ran the new code and before/after ratios compared the code with itself."""
    import json
    import shutil
    import urllib.request

    from license_server.bench import spawn_server

    root = Path(__file__).resolve().parent.parent
    tree = tmp_path / "before"
    for package in ("license_server", "device_emulator", "keys"):
        shutil.copytree(root / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    init = tree / "license_server" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "0.0.0-baseline+'))
    proc, url = spawn_server(tmp_path / "data", None, pythonpath=tree)
    try:
        with urllib.request.urlopen(url + "/healthz") as reply:
            assert json.loads(reply.read())["version"].startswith("0.0.0-baseline+")
    finally:
        proc.terminate()
        proc.wait(10)


def test_compare_serves_a_baseline_in_every_store_mode_its_tree_knows(tmp_path) -> None:
    from device_emulator.bench_support.compare import modes_of

    old = tmp_path / "old"
    (old / "license_server").mkdir(parents=True)
    assert modes_of(old) == ("direct", "group")  # a tree from before batch mode
    (old / "license_server" / "store_batch.py").write_text("")
    assert modes_of(old) == ("batch", "direct", "group")
