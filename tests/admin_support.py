"""Helpers shared by the admin API tests: a known admin token and a JSON caller."""

from __future__ import annotations

import json
import socket
from typing import Any

from license_server.settings import Settings
from tests.conftest import KEYS

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def admin_settings(tmp_path, **extra: Any) -> Settings:
    return Settings(data_dir=tmp_path / "server-data", keys_dir=KEYS, test_clock=True, admin_token=ADMIN_TOKEN,
                    **extra)


async def call(client, method: str, path: str, body: Any = None, *, headers: dict | None = None,
               auth: bool = True) -> tuple[int, Any, Any]:
    """(status, headers, JSON body or None) of an admin request over real HTTP."""
    sent = {**(AUTH if auth else {}), **(headers or {})}
    data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    response = await client.request(method, path, data=data, headers=sent)
    raw = await response.read()
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = raw
    return response.status, response.headers, doc


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address
