"""Side-by-side throughput ratios, measured in one run on one machine.

Spawns an aiohttp hello-world and license servers (one per configuration), then
fires at each in turn, several alternating rounds, with the same lean client
(:func:`license_server.bench.fire`), and prints each one's licenses/s as a ratio
of hello-world's. Alternating rounds spread other load on a shared machine over
every target alike, so the ratios hold even when absolute figures do not.

``python -m device_emulator.bench_support.compare [--rounds 3] [--seconds 3] [--json] [--baseline TREE]``

``--baseline TREE`` also serves every configuration from another source tree
(its ``PYTHONPATH``), in the same alternating rounds: before/after ratios from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path

from device_emulator.bench import prepare_challenges
from device_emulator.bench_dialects import raise_device_cap
from license_server.bench import fire, spawn_server
from license_server.protocols import clearkey


def _hello() -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "device_emulator.bench_support.hello", str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("hello-world did not start")


Targets = dict[str, tuple[str, Callable[[int], list[bytes]]]]


CONFIGS = (("batch, 1 worker", 1, "batch"), ("batch, 2 workers", 2, "batch"),
           ("direct, 1 worker", 1, "direct"), ("direct, 2 workers", 2, "direct"), ("group, 2 workers", 2, "group"))


def modes_of(tree: Path) -> tuple[str, ...]:
    """The store modes a source tree's server knows (``batch`` came with license_server/store_batch.py)."""
    has_batch = (tree / "license_server" / "store_batch.py").exists()
    return ("batch", "direct", "group") if has_batch else ("direct", "group")


def _start_targets(work: Path, procs: list[subprocess.Popen], ck_body: bytes,
                   baseline: Path | None = None) -> Targets:
    hello, url = _hello()
    procs.append(hello)
    targets: Targets = {"aiohttp hello-world": (url + "/", lambda n: [ck_body] * n)}
    trees: list[tuple[str, Path | None]] = [("", None)] + ([(" (baseline)", baseline)] if baseline else [])
    for (label, workers, mode), (suffix, tree) in ((c, t) for t in trees for c in CONFIGS):
        if tree is not None and mode not in modes_of(tree):
            continue
        label += suffix
        data_dir = work / label.replace(" ", "").replace(",", "-").replace("(", "").replace(")", "")
        proc, server = spawn_server(data_dir, None, workers, mode, pythonpath=tree)
        procs.append(proc)
        targets[f"Clear Key, {label}"] = (server + "/clearkey/license", lambda n: [ck_body] * n)
        # Challenges are built just before each round (outside the timing): built all up front, the
        # last target's would age past the server's freshness window on a slow machine.
        def fresh(n: int, server: str = server, kind: str = "temporary",
                  where: Path = work / f"dev-{len(procs)}") -> list[bytes]:
            where.mkdir(exist_ok=True)
            return prepare_challenges(where / str(len(list(where.iterdir()))), count=n, devices=4, keys_dir=None,
                                      server=server, privacy=False, kind=kind)[0]

        targets[f"Widevine, {label}"] = (server + "/widevine/license", fresh)
        if workers == 2:  # persistent grants check the caps, raised so that 4 devices can hold every license
            raise_device_cap(server, (data_dir / "admin-token").read_text().strip())
            targets[f"Widevine persistent, {label}"] = (server + "/widevine/license",
                                                        partial(fresh, server=server, kind="persistent"))
    return targets


def _measure(targets: Targets, args: argparse.Namespace) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Alternating rounds: every target once per round."""
    rates: dict[str, list[float]] = {name: [] for name in targets}
    errors: dict[str, int] = {name: 0 for name in targets}
    for _ in range(args.rounds):
        for name, (target, bodies) in targets.items():
            result = asyncio.run(fire(target, bodies(args.batch), concurrency=args.concurrency, duration=args.seconds))
            rates[name].append(result.granted / result.elapsed)
            errors[name] += sum(result.errors.values())
    return rates, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", type=int, default=3000, help="Requests prepared per target and round.")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="Also serve from this source tree (e.g. a `git worktree add ../before HEAD~5` checkout), "
                             "so before/after ratios come from one run.")
    args = parser.parse_args(argv)
    from license_server.keyring import default_keys_dir, load_keyring

    keyring = load_keyring(default_keys_dir())
    title = keyring.catalog.title("demo-movie")
    if title is None:
        parser.error("the keys directory has no demo-movie in its catalog")
    kids = [t.kid for t in title.tracks]
    ck_body = clearkey.build_license_request(kids)
    with tempfile.TemporaryDirectory(prefix="drm-compare-") as tmp:
        work = Path(tmp)
        procs: list[subprocess.Popen] = []
        try:
            targets = _start_targets(work, procs, ck_body, args.baseline)
            rates, errors = _measure(targets, args)
        finally:
            for proc in procs:  # every spawned process, even when a later one failed to start
                proc.terminate()
                proc.wait(10)
    base = max(sum(rates["aiohttp hello-world"]) / args.rounds, 1e-9)
    table = {name: {"per_s": round(sum(r) / len(r)), "ratio": round(sum(r) / len(r) / base, 3),
                    "errors": errors[name]} for name, r in rates.items()}
    if args.json:
        print(json.dumps(table))
    else:
        for name, row in table.items():
            print(f"{name:<40} {row['per_s']:>7}/s  ratio {row['ratio']:.3f}  errors {row['errors']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
