"""An in-process server for the fuzz suite: the real app on a loopback port, run by a thread.

Hypothesis drives plain blocking HTTP (``http.client``) at it, so each example costs one
request, not an app start. The store is a file so the test thread can read it (its own
connection) and check that refused requests changed nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import os
import socket
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from device_emulator.acquire import challenge
from device_emulator.cdm.base import Outgoing
from device_emulator.device import Device, DeviceFlags
from license_server import dialects
from license_server.app import create_app
from license_server.clock import ControlledClock
from license_server.core.model import Hdcp, LicenseKind, SecurityLevel
from license_server.keyring import load_keyring
from license_server.settings import Settings
from license_server.store import Store
from tests.admin_support import ADMIN_TOKEN
from tests.conftest import KEYS

EXAMPLES = int(os.environ.get("DRM_FUZZ_EXAMPLES", "60"))


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class FuzzServer:
    host: str
    port: int
    db_path: Path
    challenges: dict[str, list[Outgoing]] = field(default_factory=dict)

    def request(self, method: str, path: str, body: bytes | Iterable[bytes] | None = None,
                headers: dict[str, str] | None = None, *, chunked: bool = False) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle wait between chunks
        try:
            if chunked and body is not None:
                conn.request(method, path, body=iter(list(body)), headers=headers or {}, encode_chunked=True)
            else:
                conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def licenses_digest(self) -> str:
        """A digest of the licenses table (every row, in order)."""
        with sqlite3.connect(self.db_path) as conn:
            rows = conn.execute("SELECT * FROM licenses ORDER BY license_id").fetchall()
        return hashlib.sha256(repr(rows).encode()).hexdigest()


def _challenges(server: FuzzServer, device: Device) -> dict[str, list[Outgoing]]:
    """Valid challenges of every dialect, built by the device emulator's CDMs."""
    from device_emulator.acquire import cdm_for

    out: dict[str, list[Outgoing]] = {}
    for dialect in dialects.REGISTRY:
        if dialect.name == "fairplay":  # the CDM caches the application certificate it needs first
            cert = server.request("GET", "/fairplay/certificate")
            cdm_for(device, "fairplay").accept_certificate(cert.body)
        out[dialect.name] = [challenge(device, system=dialect.name, content_id="demo-movie", kind=kind)
                             for kind in (LicenseKind.TEMPORARY, LicenseKind.PERSISTENT)]
    return out


@pytest.fixture(scope="session")
def fuzz_server(tmp_path_factory) -> FuzzServer:
    base = tmp_path_factory.mktemp("fuzz")
    settings = Settings(data_dir=base / "data", keys_dir=KEYS, test_clock=True, admin_token=ADMIN_TOKEN)
    settings.data_dir.mkdir(parents=True)
    keyring = load_keyring(KEYS)
    clock = ControlledClock()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def start() -> None:
        app = create_app(settings, store=Store.open(settings.database_path), keyring=keyring, clock=clock)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        holder["port"] = runner.addresses[0][1]

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    server = FuzzServer("127.0.0.1", int(holder["port"]), settings.database_path)  # type: ignore[arg-type]
    device = Device.create(base / "device", keyring, model=keyring.default_model(SecurityLevel.L1), flags=DeviceFlags(),
                           max_hdcp=Hdcp.V2_2,
                           clock=clock)
    server.challenges = _challenges(server, device)
    yield server
    asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(30)  # type: ignore[union-attr]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
