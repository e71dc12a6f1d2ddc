"""Namespaces on a spawned `license-server serve --test-clock --workers 2` (issue 15): the test clock and
fault plans live in the store, so both workers agree, per namespace; two conformance runs in two
namespaces of one server pass side by side."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from license_server.core.model import LicenseKind
from tests.conftest import PROJECT, cli_json


def request(server, method: str, path: str, body: bytes | None = None, *, admin: bool = False,
            content_type: str = "application/json") -> tuple[int, dict, bytes]:
    """One request on a new connection (so the kernel may hand it to either worker)."""
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    connection = http.client.HTTPConnection(host, port, timeout=10)
    headers = {"Content-Type": content_type, **(server.admin_headers if admin else {})}
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def admin_json(server, method: str, path: str, doc: dict | None = None) -> dict:
    status, _, body = request(server, method, path, json.dumps(doc).encode() if doc is not None else None,
                              admin=True)
    assert status in (200, 201), (status, body)
    return json.loads(body)


def spread(server, path: str, times: int = 16) -> list[tuple[int, dict]]:
    """``times`` GETs of ``path``, each answered with the id of the worker that served it."""
    answers = []
    for _ in range(times):
        status, headers, body = request(server, "GET", path, admin=path.startswith("/ns/") and "/admin/" in path)
        answers.append((status, json.loads(body) if body else {}))
    return answers


def wait_for_both_workers(server) -> None:
    """The parent answers first; the forked worker binds the port a moment later."""
    deadline = time.monotonic() + 20
    seen: set[int] = set()
    while len(seen) < 2:
        assert time.monotonic() < deadline, "the second worker never answered"
        seen.update(doc["process"] for _, doc in spread(server, "/healthz", 10))


def test_clock_and_faults_per_namespace_across_two_workers(server_process, tmp_path) -> None:
    from device_emulator.acquire import acquire
    from device_emulator.device import Device

    server = server_process("--test-clock", "--workers", "2")
    wait_for_both_workers(server)
    cli_json("create", str(tmp_path / "phone"), "--json")
    device = Device.load(tmp_path / "phone")
    ids = {}
    for name in ("a", "b"):
        result = acquire(device, server=f"{server.url}/ns/{name}", content_id="demo-movie",
                         kind=LicenseKind.TEMPORARY)
        assert result.status == "granted", result.error
        ids[name] = result.license_id
    admin_json(server, "POST", "/ns/a/admin/clock", {"advance": "31d"})
    for name, state in (("a", "expired"), ("b", "issued")):
        answers = spread(server, f"/ns/{name}/admin/licenses/{ids[name]}")
        assert {(status, doc["state"]) for status, doc in answers} == {(200, state)}, name
    times = [doc["time"] for _, doc in spread(server, "/ns/a/healthz")]
    assert min(times) - admin_json(server, "GET", "/ns/b/admin/clock")["now"] > 30 * 86400

    # A count-1 fault in a: spent exactly once whichever worker serves the requests; b never sees it.
    admin_json(server, "POST", "/ns/a/admin/faults",
               {"dialect": "widevine", "action": "status", "http_status": 503, "count": 1})

    def certificate(name: str) -> int:
        return request(server, "POST", f"/ns/{name}/widevine/license", b"\x08\x04",
                       content_type="application/octet-stream")[0]

    with ThreadPoolExecutor(8) as pool:
        in_a = list(pool.map(certificate, ["a"] * 24))
        in_b = list(pool.map(certificate, ["b"] * 12))
    assert sorted(in_a) == [200] * 23 + [503] and in_b == [200] * 12
    assert admin_json(server, "GET", "/ns/a/admin/faults") == {"faults": []}


def test_two_conformance_runs_in_two_namespaces_of_one_server(server_process) -> None:
    """The checks move the clock, revoke, and change rights; run side by side in x and y, both pass."""
    server = server_process("--test-clock", "--workers", "2")
    wait_for_both_workers(server)
    only = "ATT-008,OFF-001,OFF-003,TOK-005,TOK-009"

    def run(name: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "conformance.cli", "run", "--server", server.url, "--namespace", name,
             "--admin-token", server.admin_token, "--systems", "widevine", "--only", only, "--quiet"],
            capture_output=True, text=True, timeout=300, cwd=PROJECT)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, ["x", "y"]))
    for name, result in zip(("x", "y"), results):
        assert result.returncode == 0, (name, result.stdout[-3000:], result.stderr[-3000:])
        assert f"namespace {name} reset" in result.stderr and "-> OK" in result.stdout
    listing = admin_json(server, "GET", "/admin/namespaces")
    counts = {n["name"]: n["licenses"] for n in listing["namespaces"]}
    assert counts["x"] > 0 and counts["y"] > 0 and counts["default"] == 0
