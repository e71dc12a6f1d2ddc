"""`license-server serve --workers N`: several processes share the port and the store."""

from __future__ import annotations

import http.client
import json

from license_server.core.model import LicenseKind
from license_server.store import Store
from tests.conftest import cli_json, run_cli


def health(server) -> dict:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)  # a new connection each time
    try:
        connection.request("GET", "/healthz")
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def test_two_workers_share_the_port_and_the_store(server_process, tmp_path) -> None:
    from device_emulator.acquire import acquire
    from device_emulator.device import Device

    server = server_process("--workers", "2")
    answers = [health(server) for _ in range(60)]
    assert {a["workers"] for a in answers} == {2}
    assert len({a["process"] for a in answers}) == 2  # the kernel spreads connections over both
    path = tmp_path / "phone"
    cli_json("create", str(path), "--json")
    device = Device.load(path)
    granted = [acquire(device, server=server.url, content_id="demo-movie", kind=LicenseKind.TEMPORARY).status
               for _ in range(12)]
    assert granted == ["granted"] * 12
    store = Store.open(server.data_dir / "license-server.db")
    try:
        assert len(store.licenses()) == 12  # every worker wrote to the one store
    finally:
        store.close()


def test_port_zero_needs_a_single_worker(tmp_path) -> None:
    result = run_cli("serve", "--data-dir", str(tmp_path / "d"), "--workers", "2", "--port", "0",
                     module="license_server.cli")
    assert result.returncode == 2 and "--workers" in result.stderr

