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
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import click

from device_emulator.bench_dialects import (
    build_challenges,
    clock_skew,
    create_devices,
    explain_skew,
    raise_device_cap,
)
from license_server import dialects
from license_server.bench import BenchResult, fire, spawn_server
from license_server.eventloop import install_fast_event_loop

MAX_ERROR_RATE = 0.01


def prepare_challenges(workdir: Path, *, count: int, devices: int, keys_dir: Path | None, server: str,
                       privacy: bool, system: str = "widevine",
                       kind: str = "temporary") -> tuple[list[bytes], str, dict[str, str]]:
    """``count`` distinct challenges of ``system`` from ``devices`` emulated devices, interleaved by device."""
    dirs = create_devices(workdir, devices, keys_dir, l1_only=kind == "persistent")
    shares = [(d, system, kind, count // devices + (1 if i < count % devices else 0), privacy, server)
              for i, d in enumerate(dirs)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        built = list(pool.map(build_challenges, shares))
    batches = [b for b, _, _ in built]
    content_type, headers = next(((t, h) for b, t, h in built if b), ("application/octet-stream", {}))
    # Interleave devices so consecutive requests come from different devices.
    ordered = [c for group in zip(*batches) for c in group] + [c for b in batches for c in b[len(batches[-1]):]]
    return ordered, content_type, headers


def run_bench(*, server: str | None, concurrency: int, duration: float, requests: int, devices: int,
              keys_dir: Path | None, privacy: bool, workers: int = 1, store_mode: str | None = None,
              system: str = "widevine", kind: str = "temporary",
              echo: Callable[[str], None] = print) -> BenchResult:
    with tempfile.TemporaryDirectory(prefix="drm-bench-") as tmp:
        work = Path(tmp)
        proc = None
        admin_token = os.environ.get("DRM_SERVER_ADMIN_TOKEN")
        if server is None:
            proc, server = spawn_server(work / "server-data", keys_dir, workers, store_mode)
            admin_token = (work / "server-data" / "admin-token").read_text().strip()
            echo(f"spawned a server with {workers} worker(s), store mode {store_mode or 'batch (default)'}, "
                 f"at {server}")
        try:
            warning = explain_skew(clock_skew(server))
            if warning:
                echo(warning)
            if kind == "persistent":
                if admin_token:
                    raise_device_cap(server, admin_token)
                    echo("raised the per-device caps for the run (PUT /admin/rights)")
                else:
                    echo("no DRM_SERVER_ADMIN_TOKEN: the server's caps apply (expect DOWNLOAD_LIMIT_REACHED)")
            echo(f"building {requests} {system} {kind} challenges from {devices} devices ...")
            challenges, content_type, headers = prepare_challenges(
                work, count=requests, devices=devices, keys_dir=keys_dir, server=server, privacy=privacy,
                system=system, kind=kind)
            url = server + dialects.dialect(system).license_path
            echo(f"firing at {url} with concurrency {concurrency} for up to {duration:.0f} s")
            echo(f"client event loop: {install_fast_event_loop()}")
            return asyncio.run(fire(url, challenges, concurrency=concurrency, duration=duration,
                                    content_type=content_type, headers=headers))
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
              help="Instead: compare grant (persistent and temporary), renewal, cap check and admin page cost "
                   "on an empty store and on one filled with this many licenses, then persistent Widevine grants "
                   "through two spawned servers on such stores (--devices, --duration, --requests and "
                   "--concurrency apply).")
@click.option("--system", type=click.Choice(list(dialects.NAMES)), default="widevine",
              show_default=True, help="The dialect whose licenses are requested.")
@click.option("--type", "kind", type=click.Choice(["temporary", "persistent"]), default="temporary",
              show_default=True, help="persistent exercises caps (raised for the run on a server it administers).")
@click.option("--store-mode", type=click.Choice(["direct", "batch", "group"]), default=None,
              help="Store mode of the spawned server (see `serve --store-mode`) [default: the server's, batch].")
@click.option("--compare-stores", "compare_url", default=None, metavar="POSTGRES_URL",
              help="Instead: the same load on SQLite (one host), then PostgreSQL at this URL behind one and two "
                   "spawned replicas, in one run (device_emulator/bench_stores.py).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(server: str | None, concurrency: int, duration: float, requests: int, devices: int, privacy: bool,
            keys_dir: Path | None, workers: int, store_size: int | None, system: str, kind: str, store_mode: str | None,
            as_json: bool, compare_url: str | None = None) -> None:
    """Measure Widevine-style licenses/s and latency percentiles."""
    if store_size is not None:
        raise SystemExit(_store_size(store_size, devices=devices, keys_dir=keys_dir, duration=duration,
                                     requests=requests, concurrency=concurrency, as_json=as_json))
    if compare_url is not None:
        from device_emulator import bench_stores

        with tempfile.TemporaryDirectory(prefix="drm-bench-") as tmp:
            try:
                rows = bench_stores.compare(Path(tmp), compare_url, prepare=prepare_challenges,
                                            concurrency=concurrency, duration=duration, requests=requests,
                                            devices=devices, keys_dir=keys_dir,
                                            privacy=privacy, system=system,
                                            echo=lambda m: click.echo(m, err=True))
            except RuntimeError as exc:  # a spawned server did not start (e.g. the database is unreachable)
                raise click.ClickException(str(exc)) from None
        click.echo(json.dumps(rows) if as_json else bench_stores.table(rows))
        return
    result = run_bench(server=server, concurrency=concurrency, duration=duration, requests=requests,
                       devices=devices, keys_dir=keys_dir, privacy=privacy, workers=workers,
                       store_mode=store_mode, system=system, kind=kind, echo=lambda m: click.echo(m, err=True))
    click.echo(json.dumps(result.as_dict(concurrency)) if as_json else result.report(concurrency))
    if result.error_rate > MAX_ERROR_RATE:
        click.echo(f"error rate {result.error_rate:.1%} is above {MAX_ERROR_RATE:.0%}", err=True)
        raise SystemExit(1)


def _store_size(store_size: int, *, devices: int, keys_dir: Path | None, duration: float, requests: int,
                concurrency: int, as_json: bool) -> int:
    """``--store-size``: the store's operations, then grants through two spawned servers (empty, filled)."""
    from device_emulator import bench_store_size

    if devices > bench_store_size.EMPTY_HOLDERS:  # the devices are holders of both stores, the empty one's too
        raise click.UsageError(f"--devices must be at most {bench_store_size.EMPTY_HOLDERS} with --store-size")
    # The store benchmark is server-side code; run it as its own process so this client
    # tool never imports the server's store.
    argv = [sys.executable, "-m", "license_server.bench_store", "--store-size", str(store_size)]
    store = subprocess.run(argv + (["--json"] if as_json else []), check=False,
                           stdout=subprocess.PIPE if as_json else None, text=True)
    if store.returncode:
        return store.returncode
    click.echo("", err=True)
    with tempfile.TemporaryDirectory(prefix="drm-bench-") as tmp:
        try:
            served = bench_store_size.run(Path(tmp), store_size, devices=devices, keys_dir=keys_dir,
                                          duration=duration, requests=requests, concurrency=concurrency,
                                          echo=lambda m: click.echo(m, err=True))
        except (RuntimeError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"store": json.loads(store.stdout), "server": served}) if as_json
               else bench_store_size.report(served))
    errors = sum(row["sent"] - row["granted"] for row in served["stores"].values())
    sent = sum(row["sent"] for row in served["stores"].values())
    if not sent or errors / sent > MAX_ERROR_RATE:
        click.echo(f"{errors} of {sent} grants through the servers failed", err=True)
        return 1
    return 0
