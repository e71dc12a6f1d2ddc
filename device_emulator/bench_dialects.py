"""What ``license-server bench`` needs per dialect: challenges, caps for persistent runs, a clock check.

Challenges are built by each dialect's own device CDM (through the registry), in
worker processes, so RSA/ECC signing stays the client's cost. Persistent runs
issue many licenses to few devices, so the bench raises the per-device cap of a
server it can administer (its own spawned server, or ``DRM_SERVER_ADMIN_TOKEN``).
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from license_server.core.model import Hdcp, LicenseKind, SecurityLevel

CLOCK_TOLERANCE = 5  # seconds; challenges carry their time and the server refuses stale ones


def build_challenges(args: tuple[str, str, str, int, bool, str]) -> tuple[list[bytes], str, dict[str, str]]:
    """Worker: load one device and build ``count`` fresh challenges; with their content type and headers."""
    from device_emulator.acquire import HttpLink, cdm_for, license_url
    from device_emulator.device import Device

    device_dir, system, kind, count, privacy, server = args
    cdm = cdm_for(Device.load(Path(device_dir)), system)
    cdm.prepare(HttpLink(server, license_url(server, system, None), None), privacy=privacy)
    outgoing = [cdm.wire(cdm.build_challenge("demo-movie", LicenseKind(kind))) for _ in range(count)]
    first = outgoing[0] if outgoing else None
    return [o.body for o in outgoing], first.content_type if first else "", dict(first.headers) if first else {}


def create_devices(workdir: Path, count: int, keys_dir: Path | None, *, l1_only: bool = False) -> list[str]:
    """Half L1, half L3 devices; only L1 with ``l1_only`` (persistent licenses need L1 for HD titles)."""
    from device_emulator.device import Device, DeviceFlags
    from license_server.keyring import default_keys_dir, load_keyring

    keyring = load_keyring(keys_dir or default_keys_dir())
    dirs = []
    for index in range(count):
        level = SecurityLevel.L1 if index % 2 == 0 or l1_only else SecurityLevel.L3
        device = Device.create(workdir / f"device-{index}", keyring, model=keyring.default_model(level),
                               flags=DeviceFlags(), max_hdcp=Hdcp.V2_2)
        dirs.append(str(device.directory))
    return dirs


def raise_device_cap(server: str, admin_token: str, cap: int = 1_000_000) -> None:
    """Let one device hold ``cap`` active persistent licenses (``PUT /admin/rights``)."""
    auth = {"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(server + "/admin/rights", headers=auth)) as reply:
        rights = json.loads(reply.read())
    rights["max_active_downloads_per_device"] = cap
    for tier in rights.get("tiers", {}).values():
        for name in ("device_cap", "monthly_allowance"):
            if tier.get(name) is not None:
                tier[name] = cap
    request = urllib.request.Request(server + "/admin/rights", data=json.dumps(rights).encode(), headers=auth,
                                     method="PUT")
    urllib.request.urlopen(request).close()


def clock_skew(server: str) -> int:
    """Server time (``/healthz``) minus this machine's, in whole seconds (round trip halved)."""
    before = time.time()
    with urllib.request.urlopen(server + "/healthz", timeout=5) as reply:
        server_time = json.loads(reply.read())["time"]
    return round(server_time - (before + time.time()) / 2)


def explain_skew(skew: int) -> str | None:
    """A warning when the server's clock differs from ours by more than the tolerance, else None."""
    if abs(skew) <= CLOCK_TOLERANCE:
        return None
    side = "ahead of" if skew > 0 else "behind"
    return (f"warning: the server's clock is {abs(skew)} s {side} this machine's (GET /healthz \"time\"). "
            "Challenges carry the client's time and the server refuses those outside its freshness window, "
            "and licenses expire on the server's clock: expect refusals (REPLAYED_CHALLENGE). "
            "A --test-clock server moved by /admin/clock, or an unsynchronised host, does this.")
