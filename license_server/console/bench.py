"""``license-server console-bench``: console page latency with a large store (not a timed test).

Seeds a throw-away SQLite store with N licenses (and one audit entry each) spread
over devices, accounts, titles, states and dialects, starts the real app on a
loopback port, and times each console page over real HTTP.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from license_server.clock import ControlledClock
from license_server.core.entitlements import slot_end
from license_server.dialects import NAMES
from license_server.keyring import load_keyring
from license_server.settings import Settings
from license_server.store import Store

STATES = ("issued", "in_use", "renewed", "released", "expired")
TOKEN = "console-bench-admin-token-0123456789"
START = 1_800_000_000


def seed(store: Store, count: int, content_ids: list[str]) -> None:
    """Bulk-insert ``count`` licenses and their grant audit entries (benchmark fixture only)."""
    policy = json.dumps({"can_play": True, "can_persist": True, "rental_duration": 2592000,
                         "playback_duration": 172800})
    slot = slot_end(json.loads(policy), 0)
    rows, audit = [], []
    for i in range(count):
        license_id = f"{i:032x}"
        device, system = f"{i % 5000:032x}", NAMES[i % len(NAMES)]
        content = content_ids[i % len(content_ids)]
        at = START - count + i
        rows.append((license_id, system, device, content, "persistent", STATES[i % len(STATES)], 1, "[]",
                     '["SD"]', policy, at, at, "{}", at, f"account-{i % 20000}", at + slot))
        audit.append((at, system, "grant", device, content, license_id, None, "persistent: SD"))
    with store.transaction():
        store.db.conn.executemany(
            "INSERT INTO licenses (license_id, system, device_id, content_id, kind, state, version, kids, tracks, "
            "policy, issued_at, updated_at, secrets, license_start, account, slot_end) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        store.db.conn.executemany(
            "INSERT INTO audit (at, system, event, device_id, content_id, license_id, code, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", audit)
        store.db.conn.executemany(
            "INSERT INTO devices VALUES (?, ?, 7001, 'emulated-phone-l1', 'L1', 'HARDWARE_VERIFIED', ?, ?)",
            [(f"{d:032x}", NAMES[d % len(NAMES)], START, START) for d in range(min(count, 5000))])


def pages(count: int) -> list[str]:
    middle = count // 2
    return ["/console", "activity", "activity/rows?after=0", "licenses", "licenses?state=expired",
            f"licenses?device_id={7 % 5000:032x}", "licenses?account=account-42&system=widevine",
            f"licenses?before={middle}", f"licenses/{middle:032x}", "devices", "clock", "conformance", "inspector"]


async def measure(count: int, rounds: int, echo: Callable[[str], None]) -> list[tuple[str, float, float, float]]:
    keyring = load_keyring()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "bench.db")
        started = time.perf_counter()
        seed(store, count, sorted(keyring.catalog.titles))
        echo(f"seeded {count} licenses in {time.perf_counter() - started:.1f} s")
        from license_server.app import create_app

        settings = Settings(data_dir=Path(tmp), test_clock=True, admin_token=TOKEN, reports_dir=Path(tmp))
        app = create_app(settings, store=store, keyring=keyring, clock=ControlledClock(START, frozen=True))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        results = []
        try:
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
                for path in pages(count):
                    url = f"http://127.0.0.1:{port}" + (path if path.startswith("/") else f"/admin/console/{path}")
                    timings = []
                    for _ in range(rounds):
                        begin = time.perf_counter()
                        async with session.get(url) as response:
                            await response.read()
                            if response.status != 200:
                                raise RuntimeError(f"{path}: HTTP {response.status}")
                        timings.append((time.perf_counter() - begin) * 1000)
                    results.append((path, statistics.median(timings), _p95(timings), max(timings)))
        finally:
            await runner.cleanup()
            store.close()
    return results


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def report(results: list[tuple[str, float, float, float]], count: int) -> str:
    lines = [f"console page latency with {count} licenses (ms over real HTTP, loopback)",
             f"{'page':<48} {'p50':>8} {'p95':>8} {'max':>8}"]
    lines += [f"{path:<48} {p50:8.1f} {p95:8.1f} {top:8.1f}" for path, p50, p95, top in results]
    worst = max(p95 for _, _, p95, _ in results)
    lines.append(f"worst p95: {worst:.1f} ms ({'under' if worst < 200 else 'OVER'} the 200 ms target)")
    return "\n".join(lines)
