"""Namespaces and stream limits on two `license-server serve --test-clock --store postgresql://...` replicas
sharing one database (issues 15 and 17): a clock moved in namespace ``a`` expires a license there and not in
``b``, seen the same through both replicas; faults in ``a`` never touch ``b``; two conformance runs in two
namespaces pass side by side through a round-robin load balancer over both replicas; 20 concurrent stream
starts over both replicas give exactly the account's ``max_streams``."""

from __future__ import annotations

import itertools
import json
import secrets
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from license_server.core.model import LicenseKind
from tests.conftest import PROJECT, ServerProcess, cli_json
from tests.test_namespaces_process import admin_json, request, spread
from tests.test_streams_cli import issue_token, make_devices

CONTENT = "demo-movie"


@pytest.fixture
def replicas(postgres_db: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Two test-clock replicas on one database, with one admin token (as behind a load balancer)."""
    token = "test-admin-" + secrets.token_hex(16)
    started: list[ServerProcess] = []
    try:
        for index in range(2):
            started.append(ServerProcess(tmp_path / f"replica-{index}", "--store", postgres_db, "--test-clock",
                                         "--admin-token", token))
        yield started
    finally:
        for server in started:
            server.stop()


class RoundRobin:
    """A TCP load balancer on a loopback port: each new connection goes to the next replica."""

    def __init__(self, replicas: list[ServerProcess]) -> None:
        self.backends = itertools.cycle([("127.0.0.1", server.port) for server in replicas])
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.served: list[int] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            backend = next(self.backends)
            self.served.append(backend[1])
            upstream = socket.create_connection(backend)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def test_clock_and_faults_per_namespace_on_both_replicas(replicas, tmp_path) -> None:
    from device_emulator.acquire import acquire
    from device_emulator.device import Device

    one, two = replicas
    cli_json("create", str(tmp_path / "phone"), "--json")
    device = Device.load(tmp_path / "phone")
    ids = {}
    for name, server in (("a", one), ("b", two)):
        result = acquire(device, server=f"{server.url}/ns/{name}", content_id=CONTENT, kind=LicenseKind.TEMPORARY)
        assert result.status == "granted", result.error
        ids[name] = result.license_id
    admin_json(two, "POST", "/ns/a/admin/clock", {"advance": "31d"})
    for server in replicas:  # the next request on either replica sees the moved clock of a, and only of a
        for name, state in (("a", "expired"), ("b", "issued")):
            answers = spread(server, f"/ns/{name}/admin/licenses/{ids[name]}", 4)
            assert {(status, doc["state"]) for status, doc in answers} == {(200, state)}, (server.url, name)
        assert admin_json(server, "GET", "/ns/a/admin/clock")["now"] \
            - admin_json(server, "GET", "/ns/b/admin/clock")["now"] > 30 * 86400

    # A count-1 fault in a, set through one replica: spent exactly once over both; b never sees it.
    admin_json(one, "POST", "/ns/a/admin/faults",
               {"dialect": "widevine", "action": "status", "http_status": 503, "count": 1})

    def certificate(job: tuple[ServerProcess, str]) -> int:
        server, name = job
        return request(server, "POST", f"/ns/{name}/widevine/license", b"\x08\x04",
                       content_type="application/octet-stream")[0]

    with ThreadPoolExecutor(8) as pool:
        in_a = list(pool.map(certificate, [(replicas[n % 2], "a") for n in range(24)]))
        in_b = list(pool.map(certificate, [(replicas[n % 2], "b") for n in range(12)]))
    assert sorted(in_a) == [200] * 23 + [503] and in_b == [200] * 12
    for server in replicas:
        assert admin_json(server, "GET", "/ns/a/admin/faults") == {"faults": []}


def test_two_conformance_runs_in_two_namespaces_over_two_replicas(replicas, tmp_path) -> None:
    """Both runs go through one load balancer URL that alternates connections over the replicas."""
    balancer = RoundRobin(replicas)
    only = "ATT-008,OFF-001,OFF-003,TOK-005,TOK-009,STR-001,STR-002,DES-004"  # DES-004: through its own relay

    def run(name: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "conformance.cli", "run", "--server", balancer.url, "--namespace", name,
             "--admin-token", replicas[0].admin_token, "--systems", "widevine", "--only", only, "--quiet",
             "--report", str(tmp_path / name)],
            capture_output=True, text=True, timeout=300, cwd=PROJECT)

    def failures(name: str) -> list[str]:
        """What a failed run's report says of each check that did not pass (the table alone is cut short)."""
        report = tmp_path / name / "report.json"
        results = json.loads(report.read_text())["results"] if report.exists() else []
        return [f"{r['id']} {r['status']}: {r['reason']}" for r in results
                if r["status"] not in ("passed", "not_applicable")]

    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(run, ["x", "y"]))
    finally:
        balancer.close()
    for name, result in zip(("x", "y"), results):
        assert result.returncode == 0, (name, failures(name), result.stderr[-2000:])
        assert f"namespace {name} reset" in result.stderr and "-> OK" in result.stdout
    assert {port for port in balancer.served} == {server.port for server in replicas}
    counts = {n["name"]: n["licenses"] for n in admin_json(replicas[1], "GET", "/admin/namespaces")["namespaces"]}
    assert counts["x"] > 0 and counts["y"] > 0 and counts["default"] == 0


def test_twenty_concurrent_stream_starts_over_two_replicas_give_exactly_the_limit(replicas, tmp_path) -> None:
    from device_emulator.cdm.widevine import WidevineCdm
    from device_emulator.device import Device

    token = issue_token(replicas[0], "crowd", "--max-streams", "3")
    devices = [Device.load(path) for path in make_devices(tmp_path, *(f"d{i}" for i in range(5)))]
    bodies = [WidevineCdm(devices[i % 5]).build_challenge(CONTENT, LicenseKind.TEMPORARY, privacy=False).body
              for i in range(20)]
    outcomes: list[tuple[int, str | None]] = []
    gate = threading.Barrier(20)

    def post(n: int) -> None:
        request = urllib.request.Request(replicas[n % 2].url + "/widevine/license", data=bodies[n], method="POST",
                                         headers={"X-DRM-Token": token})
        gate.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                outcomes.append((reply.status, None))
        except urllib.error.HTTPError as exc:
            outcomes.append((exc.code, exc.headers.get("X-DRM-Error-Code")))

    threads = [threading.Thread(target=post, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert outcomes.count((200, None)) == 3, outcomes
    assert outcomes.count((403, "STREAM_LIMIT_REACHED")) == 17, outcomes
    for server in replicas:
        assert admin_json(server, "GET", "/admin/streams?account=crowd")["count"] == 3
