"""``license-server bench --store-size N``, through the server: does a grant cost the same on a full store?

The store benchmark (:mod:`license_server.bench_store`) times the store's own operations. This part
asks what a client sees: two servers spawned side by side, one on a nearly empty store and one on a
store filled with ``N`` licenses over 10,000 devices and accounts, receive the same load of
persistent Widevine-style grants (caps counted) from the same emulated devices, in alternating rounds.
The devices are among the fill's holders and every request carries an entitlement token naming the
holder's account, so each grant is counted against, and written beside, that holder's stored
licenses (10 on the empty store, 100 on the filled one). It prints each store's licenses/s and
latency percentiles, and their ratios (filled over empty; 1.0 is flat).

The fill runs as ``python -m license_server.bench_store --fill`` in its own process: this client
tool never imports the server's store.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from device_emulator.bench_dialects import build_challenges, create_devices, raise_device_cap
from license_server import dialects
from license_server.bench import BenchResult, fire, spawn_server

EMPTY_LICENSES, EMPTY_HOLDERS = 100, 10  # as the store benchmark's "empty" store: admin pages fill on both
FILLED_HOLDERS = 10_000
ROUNDS = 6  # alternating rounds per store, after a warm-up: load from other processes hits both
SYSTEM, KIND = "widevine", "persistent"  # its device ids are the devices' serial numbers, which the fill names


def run(work: Path, store_size: int, *, devices: int, keys_dir: Path | None, duration: float, requests: int,
        concurrency: int, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Fill two servers' stores (``EMPTY_LICENSES`` and ``store_size`` licenses), fire the same grants at
    both in alternating rounds (``duration`` seconds per store in all; ``requests`` challenges, half each)."""
    if not 1 <= devices <= EMPTY_HOLDERS:
        raise ValueError(f"--devices must be between 1 and {EMPTY_HOLDERS} for --store-size")
    dirs = create_devices(work / "devices", devices, keys_dir, l1_only=True)
    ids = [_device_id(Path(d)) for d in dirs]
    servers: dict[str, str] = {}
    procs = []
    try:
        for name, size, holders in (("empty", EMPTY_LICENSES, EMPTY_HOLDERS),
                                    ("filled", store_size, FILLED_HOLDERS)):
            data = work / name
            data.mkdir()
            started = time.perf_counter()
            _fill(data / "license-server.db", size, holders, ids)
            echo(f"{name} store: {size} licenses over {holders} devices/accounts, filled in "
                 f"{time.perf_counter() - started:.1f} s")
            proc, url = spawn_server(data, keys_dir)
            procs.append(proc)
            raise_device_cap(url, (data / "admin-token").read_text().strip())
            servers[name] = url
        per_device = max(1, requests // (2 * devices))
        echo(f"building {2 * per_device * devices} {SYSTEM} {KIND} challenges from {devices} devices ...")
        loads = _loads(dirs, per_device, servers["empty"], _tokens(keys_dir, devices))
        results = _alternate(servers, loads, concurrency=concurrency, duration=duration)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    empty, filled = results["empty"], results["filled"]
    return {"system": SYSTEM, "type": KIND, "store_size": store_size, "devices": devices, "rounds": ROUNDS,
            "stores": {name: result.as_dict(concurrency) for name, result in results.items()},
            "ratios": {"p50": _ratio(filled.percentile(50), empty.percentile(50)),
                       "p99": _ratio(filled.percentile(99), empty.percentile(99)),
                       "licenses_per_s": _ratio(filled.granted / filled.elapsed if filled.elapsed else 0.0,
                                                empty.granted / empty.elapsed if empty.elapsed else 0.0)}}


def report(result: dict[str, Any]) -> str:
    lines = [f"through the server: {result['system']} {result['type']} grants, {result['devices']} devices, "
             f"{result['rounds']} alternating rounds"]
    for name, row in result["stores"].items():
        lines.append(f"  {name:<7} {row['licenses_per_s']:>8.0f} licenses/s   p50 {row['p50_ms']:>6.2f} ms   "
                     f"p99 {row['p99_ms']:>6.2f} ms   errors {row['errors'] or 0}")
    ratios = result["ratios"]
    lines.append(f"  filled/empty: p50 {ratios['p50']:.2f}, p99 {ratios['p99']:.2f}, "
                 f"licenses/s {ratios['licenses_per_s']:.2f}")
    return "\n".join(lines)


def _ratio(filled: float, empty: float) -> float:
    return round(filled / empty, 3) if empty else float("nan")


def _device_id(directory: Path) -> str:
    from device_emulator.device import Device

    return Device.load(directory).device_id


def _fill(path: Path, count: int, holders: int, device_ids: list[str]) -> None:
    argv = [sys.executable, "-m", "license_server.bench_store", "--fill", str(path), "--store-size", str(count),
            "--holders", str(holders)]
    for device_id in device_ids:
        argv += ["--device", device_id]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"filling {path.name} failed: {done.stderr.strip()}")


def _tokens(keys_dir: Path | None, devices: int) -> list[str]:
    """Device ``i``'s token: the fill's account of holder ``i`` (``acct-i``), premium tier, the bench's title."""
    from license_server.keyring import default_keys_dir, load_keyring
    from license_server.tokens import mint

    keyring = load_keyring(keys_dir or default_keys_dir())
    private = json.loads(keyring.token_signing_keys_path.read_text(encoding="utf-8"))
    now = int(time.time())
    return [mint({"sub": f"acct-{i}", "tier": "premium", "content": ["demo-movie"], "policy": {"persistent": True},
                  "iat": now, "exp": now + 3600},
                 private_jwks=private, kid="test-hs256") for i in range(devices)]


Load = tuple[list[bytes], list[dict[str, str]], str]  # bodies, each one's headers, content type


def _loads(dirs: list[str], per_device: int, server: str, tokens: list[str]) -> dict[str, Load]:
    """Each store's challenges (``per_device`` from every device), interleaved by device, with its token."""
    shares = [(d, SYSTEM, KIND, 2 * per_device, False, server) for d in dirs]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        built = list(pool.map(build_challenges, shares))
    content_type = built[0][1]
    loads: dict[str, Load] = {}
    for n, name in enumerate(("empty", "filled")):
        bodies, headers = [], []
        for k in range(per_device):
            for (batch, _, common), token in zip(built, tokens, strict=True):
                bodies.append(batch[2 * k + n])
                headers.append({**common, "X-DRM-Token": token})
        loads[name] = (bodies, headers, content_type)
    return loads


def _alternate(servers: dict[str, str], loads: dict[str, Load], *, concurrency: int,
               duration: float) -> dict[str, BenchResult]:
    """A warm-up burst at each server (not counted: a new process's first requests), then ``ROUNDS``
    rounds, each store in turn (which one goes first alternates), results summed per store."""
    totals = {name: BenchResult(0, 0, Counter(), 0.0, []) for name in servers}
    path = dialects.dialect(SYSTEM).license_path
    for r in range(-1, ROUNDS):
        for name in (("empty", "filled") if r % 2 == 0 else ("filled", "empty")):
            bodies, headers, content_type = loads[name]
            share = slice((r + 1) * len(bodies) // (ROUNDS + 1), (r + 2) * len(bodies) // (ROUNDS + 1))
            result = asyncio.run(fire(servers[name] + path, bodies[share], concurrency=concurrency,
                                      duration=duration / ROUNDS / (4 if r < 0 else 1), content_type=content_type,
                                      request_headers=headers[share]))
            if r < 0:
                continue
            total = totals[name]
            total.sent += result.sent
            total.granted += result.granted
            total.errors.update(result.errors)
            total.elapsed += result.elapsed
            total.latencies_ms.extend(result.latencies_ms)
    return totals
