"""``license-server bench``: license throughput and latency, measured not guessed.

A client tool: pre-builds distinct, signed Widevine-style challenges from a
handful of emulated devices (in worker processes: RSA signing is the device's
cost, not the server's), then fires them at the server with a fixed
concurrency (:func:`license_server.bench.fire`) and prints licenses/s and
latency percentiles. Plugged into the ``license-server`` command line through
the ``license_server.commands`` entry point, so the server package never
imports the device emulator.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import click

from license_server.bench import BenchResult, fire, spawn_server
from license_server.eventloop import install_fast_event_loop


def _build_challenges(args: tuple[str, int, bool]) -> list[bytes]:
    """Worker: load one device and sign ``count`` fresh challenges."""
    from license_server.core.model import LicenseKind
    from device_emulator.cdm.widevine import WidevineCdm
    from device_emulator.device import Device

    device_dir, count, privacy = args
    cdm = WidevineCdm(Device.load(Path(device_dir)))
    return [cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=privacy).body for _ in range(count)]


def prepare_challenges(workdir: Path, *, count: int, devices: int, keys_dir: Path | None, server: str,
                       privacy: bool) -> list[bytes]:
    from license_server.core.model import Hdcp, SecurityLevel
    from license_server.keyring import default_keys_dir, load_keyring
    from device_emulator.cdm.widevine import WidevineCdm
    from device_emulator.device import Device, DeviceFlags

    keyring = load_keyring(keys_dir or default_keys_dir())
    dirs = []
    for index in range(devices):
        level = SecurityLevel.L1 if index % 2 == 0 else SecurityLevel.L3
        device = Device.create(workdir / f"device-{index}", keyring, model=keyring.default_model(level),
                               flags=DeviceFlags(), max_hdcp=Hdcp.V2_2)
        if privacy:
            cdm = WidevineCdm(device)
            with urllib.request.urlopen(urllib.request.Request(
                    server + "/widevine/license", data=cdm.service_certificate_request(), method="POST")) as r:
                cdm.accept_service_certificate(r.read())
        dirs.append(str(device.directory))
    shares = [(d, count // devices + (1 if i < count % devices else 0), privacy) for i, d in enumerate(dirs)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        batches = list(pool.map(_build_challenges, shares))
    # Interleave devices so consecutive requests come from different devices.
    return [c for group in zip(*batches) for c in group] + [c for b in batches for c in b[len(batches[-1]):]]


def run_bench(*, server: str | None, concurrency: int, duration: float, requests: int, devices: int,
              keys_dir: Path | None, privacy: bool, workers: int = 1, store_mode: str = "direct",
              echo: Callable[[str], None] = print) -> BenchResult:
    with tempfile.TemporaryDirectory(prefix="drm-bench-") as tmp:
        work = Path(tmp)
        proc = None
        if server is None:
            proc, server = spawn_server(work / "server-data", keys_dir, workers, store_mode)
            echo(f"spawned a server with {workers} worker(s) at {server} (data in a temporary directory)")
        try:
            echo(f"building {requests} signed challenges from {devices} devices ...")
            challenges = prepare_challenges(work, count=requests, devices=devices, keys_dir=keys_dir,
                                            server=server, privacy=privacy)
            echo(f"firing at {server}/widevine/license with concurrency {concurrency} for up to {duration:.0f} s")
            echo(f"client event loop: {install_fast_event_loop()}")
            return asyncio.run(fire(server + "/widevine/license", challenges, concurrency=concurrency,
                                    duration=duration))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(10)


@click.command(name="bench")
@click.option("--server", default=None, help="Server base URL [default: spawn a local server].")
@click.option("--concurrency", default=32, show_default=True, type=click.IntRange(1, 1024))
@click.option("--duration", default=10.0, show_default=True, type=click.FloatRange(0.5, 3600),
              help="Stop firing after this many seconds.")
@click.option("--requests", default=40000, show_default=True, type=click.IntRange(1),
              help="Distinct challenges to pre-build (firing stops when they run out).")
@click.option("--devices", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Emulated devices the challenges come from (half L1, half L3).")
@click.option("--privacy", is_flag=True, help="Encrypt the client id (privacy mode) in every challenge.")
@click.option("--keys", "keys_dir", default=None, type=click.Path(path_type=Path), help="keys/ directory.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes of the spawned server (see `serve --workers`).")
@click.option("--store-size", default=None, type=click.IntRange(1),
              help="Instead: compare grant, renewal, cap check and admin page cost on an empty store and on "
                   "one filled with this many licenses (a store benchmark, no server).")
@click.option("--store-mode", type=click.Choice(["direct", "group"]), default="direct", show_default=True,
              help="Store mode of the spawned server (see `serve --store-mode`).")
@click.option("--json", "as_json", is_flag=True, help="With --store-size: print the result as JSON.")
def command(server: str | None, concurrency: int, duration: float, requests: int, devices: int, privacy: bool,
            keys_dir: Path | None, workers: int, store_size: int | None, store_mode: str,
            as_json: bool) -> None:
    """Measure Widevine-style licenses/s and latency percentiles."""
    if store_size is not None:
        # The store benchmark is server-side code; run it as its own process so this client
        # tool never imports the server's store.
        argv = [sys.executable, "-m", "license_server.bench_store", "--store-size", str(store_size)]
        raise SystemExit(subprocess.run(argv + (["--json"] if as_json else []), check=False).returncode)
    result = run_bench(server=server, concurrency=concurrency, duration=duration, requests=requests,
                       devices=devices, keys_dir=keys_dir, privacy=privacy, workers=workers,
                       store_mode=store_mode, echo=lambda m: click.echo(m, err=True))
    click.echo(result.report(concurrency))
