"""Shared fixtures: the project's test keyring, a frozen clock, in-memory stores,
an app over real HTTP, and devices provisioned on the same clock."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from device_emulator.cdm.widevine import CdmError, LoadedLicense, PendingRequest, WidevineCdm
from device_emulator.device import Device, DeviceFlags
from license_server.app import create_app
from license_server.clock import ControlledClock
from license_server.core.model import Hdcp, LicenseKind
from license_server.keyring import Keyring, load_keyring
from license_server.settings import Settings
from license_server.store import Store

PROJECT = Path(__file__).resolve().parent.parent
KEYS = PROJECT / "keys"
START = 1_800_000_000  # 2027-01-15T08:00:00Z: a fixed, frozen "now"


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return load_keyring(KEYS)


@pytest.fixture
def clock() -> ControlledClock:
    return ControlledClock(START, frozen=True)


@pytest.fixture
def store() -> Store:
    s = Store.memory()
    yield s
    s.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "server-data", keys_dir=KEYS, test_clock=True)


@pytest.fixture
async def client(aiohttp_client, settings, store, keyring, clock):
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return await aiohttp_client(create_app(settings, store=store, keyring=keyring, clock=clock))


@pytest.fixture
def make_device(tmp_path: Path, keyring: Keyring, clock: ControlledClock) -> Callable[..., Device]:
    counter = iter(range(1000))

    def make(level: str = "L1", *, model: str | None = None, hdcp: Hdcp = Hdcp.V2_2, **flags: bool) -> Device:
        from license_server.core.model import SecurityLevel

        chosen = keyring.models[model] if model else keyring.default_model(SecurityLevel(level))
        return Device.create(tmp_path / f"device-{next(counter)}", keyring, model=chosen,
                             flags=DeviceFlags(**flags), max_hdcp=hdcp, clock=clock)

    return make


class WidevineExchange:
    """Drives a device's CDM against the test server over real HTTP."""

    def __init__(self, client, path: str = "/widevine/license") -> None:
        self.client = client
        self.path = path  # e.g. /ns/<name>/widevine/license

    async def post(self, body: bytes, query: str = ""):
        response = await self.client.post(self.path + query, data=body)
        return response.status, response.headers, await response.read()

    async def provision_service_certificate(self, cdm: WidevineCdm) -> None:
        _, _, body = await self.post(cdm.service_certificate_request())
        cdm.accept_service_certificate(body)

    async def acquire(self, device: Device, content_id: str = "demo-movie",
                      kind: LicenseKind = LicenseKind.TEMPORARY, *, privacy: bool = False,
                      query: str = "") -> tuple[int, dict, LoadedLicense | CdmError, PendingRequest]:
        cdm = WidevineCdm(device)
        if privacy and cdm.service_certificate is None:
            await self.provision_service_certificate(cdm)
        pending = cdm.build_challenge(content_id, kind, privacy=privacy)
        status, headers, body = await self.post(pending.body, query)
        try:
            outcome: LoadedLicense | CdmError = cdm.process_license(pending, body)
        except CdmError as exc:
            outcome = exc
        return status, headers, outcome, pending


@pytest.fixture
def widevine(client) -> WidevineExchange:
    return WidevineExchange(client)


def tracks(loaded: LoadedLicense, device: Device) -> list[str]:
    return [info.track for info in device.tee.key_info(loaded.handle)]


# ------------------------------------------------------------ real processes

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_revocations(data_dir: Path, doc: dict, namespace: str = "default") -> None:
    """Replace a spawned server's revocation list in its SQLite store (the namespace's ``revocations``
    document): the server sees it on its next request, as it saw a rewritten revocations.json before."""
    from license_server.revocations import RevocationList
    from license_server.store_factory import SqliteStores

    stores = SqliteStores(data_dir)
    try:
        RevocationList(stores.open(namespace)).replace(doc)
    finally:
        stores.close()


class ServerProcess:
    """A real `license-server serve` process on a free loopback port."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        # The admin API needs a bearer token: choose one unless the test passes its own.
        self.admin_token = extra[extra.index("--admin-token") + 1] if "--admin-token" in extra \
            else "test-admin-" + secrets.token_hex(16)
        if "--admin-token" not in extra:
            extra = ("--admin-token", self.admin_token, *extra)
        self.log = data_dir.parent / f"server-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "license_server.cli", "serve", "--port", str(self.port),
             "--data-dir", str(data_dir), "--keys", str(KEYS), *extra],
            stdout=subprocess.DEVNULL, stderr=self.log.open("wb"),
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text(errors='replace')}")

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def server_process(tmp_path: Path):
    started: list[ServerProcess] = []

    def start(*extra: str) -> ServerProcess:
        server = ServerProcess(tmp_path / f"srv-{len(started)}", *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def run_cli(*args: str, module: str = "device_emulator.cli", env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a CLI the way a user would (a separate Python process)."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def cli_json(*args: str, expect: int = 0, **kwargs) -> dict | list:
    result = run_cli(*args, **kwargs)
    assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


# ------------------------------------------------------------ PostgreSQL

from tests.pg_support import any_store, pg_stores, postgres_db, postgres_url  # noqa: E402,F401  (fixtures)
