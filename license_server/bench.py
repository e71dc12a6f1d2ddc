"""Load-generation primitives of ``license-server bench`` that need no device.

Fires pre-built challenges at a server over keep-alive connections with a
fixed concurrency, reads the answers and summarises licenses/s and latency
percentiles; spawns a local server to measure. The challenges themselves come
from emulated devices, so the command lives with the client tools
(:mod:`device_emulator.bench`, plugged into ``license-server`` through the
``license_server.commands`` entry point): the server package never imports the
device emulator.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from license_server.clock import monotonic
from license_server.errors import ERROR_CODE_HEADER


@dataclass
class BenchResult:
    sent: int
    granted: int
    errors: Counter
    elapsed: float
    latencies_ms: list[float]

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    @property
    def error_rate(self) -> float:
        return (self.sent - self.granted) / self.sent if self.sent else 1.0

    def as_dict(self, concurrency: int) -> dict[str, object]:
        return {"sent": self.sent, "granted": self.granted, "errors": dict(self.errors), "concurrency": concurrency,
                "elapsed_s": round(self.elapsed, 3),
                "licenses_per_s": round(self.granted / self.elapsed, 1) if self.elapsed else 0.0,
                "p50_ms": round(self.percentile(50), 2), "p95_ms": round(self.percentile(95), 2),
                "p99_ms": round(self.percentile(99), 2), "error_rate": round(self.error_rate, 4)}

    def report(self, concurrency: int) -> str:
        rate = self.granted / self.elapsed if self.elapsed else 0.0
        lines = [
            f"requests sent      {self.sent}",
            f"licenses granted   {self.granted}",
            f"errors             {dict(self.errors) or 0}",
            f"concurrency        {concurrency}",
            f"elapsed            {self.elapsed:.2f} s",
            f"throughput         {rate:.0f} licenses/s",
            f"latency p50        {self.percentile(50):.1f} ms",
            f"latency p95        {self.percentile(95):.1f} ms",
            f"latency p99        {self.percentile(99):.1f} ms",
            f"latency mean       {statistics.fmean(self.latencies_ms) if self.latencies_ms else float('nan'):.1f} ms",
        ]
        return "\n".join(lines)


async def fire(url: str, challenges: list[bytes], *, concurrency: int, duration: float,
               content_type: str = "application/octet-stream", headers: dict[str, str] | None = None,
               request_headers: Sequence[Mapping[str, str]] | None = None) -> BenchResult:
    """``concurrency`` keep-alive connections, each sending one request at a time; ``request_headers``,
    when given, holds each challenge's own headers (a token per device), on top of ``headers``.

    A lean HTTP/1.1 client over asyncio streams rather than a full client
    library: on a small machine the load generator shares the CPU with the
    server, and every cycle it spends is one the server does not get.
    """
    target = urlsplit(url)
    latencies: list[float] = []
    errors: Counter = Counter()
    granted = sent = 0
    path = target.path + (f"?{target.query}" if target.query else "")

    def request_head(own: Mapping[str, str]) -> bytes:
        extra = "".join(f"{name}: {value}\r\n" for name, value in {**(headers or {}), **own}.items())
        return (f"POST {path or '/'} HTTP/1.1\r\nHost: {target.netloc}\r\n{extra}"
                f"Content-Type: {content_type}\r\nContent-Length: ").encode()

    head = request_head({})
    heads = [request_head(own) for own in request_headers] if request_headers is not None else None
    if heads is not None and len(heads) != len(challenges):
        raise ValueError("request_headers must hold one mapping per challenge")
    queue = iter(zip(challenges, heads) if heads is not None else ((body, head) for body in challenges))
    start = monotonic()
    deadline = start + duration

    async def worker() -> None:
        nonlocal granted, sent
        secure = target.scheme == "https"
        reader, writer = await asyncio.open_connection(target.hostname, target.port or (443 if secure else 80),
                                                       ssl=True if secure else None)
        try:
            for body, request in queue:
                if monotonic() > deadline:
                    return
                t0 = monotonic()
                writer.write(request + str(len(body)).encode() + b"\r\n\r\n" + body)
                try:
                    status, code = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    errors[type(exc).__name__] += 1
                    sent += 1
                    return
                latencies.append((monotonic() - t0) * 1000)
                sent += 1
                if status == 200:
                    granted += 1
                else:
                    errors[code or str(status)] += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return BenchResult(sent, granted, errors, monotonic() - start, latencies)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, str | None]:
    """Status and stable error code of one response; its body is read and dropped."""
    status = int((await reader.readline()).split()[1])
    length, code = 0, None
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == ERROR_CODE_HEADER.lower().encode():
            code = value.strip().decode("ascii", "replace")
    await reader.readexactly(length)
    return status, code


def spawn_server(data_dir: Path, keys_dir: Path | None, workers: int = 1,
                 store_mode: str | None = None, pythonpath: Path | None = None,
                 store: str | None = None) -> tuple[subprocess.Popen, str]:
    """A local server on a free port (``pythonpath``: serve another source tree, for before/after runs;
    ``store``: a ``--store`` URL)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "license_server.cli", "serve", "--port", str(port), "--data-dir",
               str(data_dir), "--log-level", "WARNING", "--workers", str(workers)]
    if store_mode:
        command += ["--store-mode", store_mode]
    if keys_dir:
        command += ["--keys", str(keys_dir)]
    if store:
        command += ["--store", store]
    env = {**os.environ, "PYTHONPATH": str(pythonpath)} if pythonpath is not None else None
    # ``python -m`` puts the working directory first on sys.path: run another tree from inside it, or
    # this tree's code would be imported in its place
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=str(pythonpath) if pythonpath is not None else None)
    url = f"http://127.0.0.1:{port}"
    deadline = monotonic() + 90  # a loaded machine starts Python slowly
    while monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            asyncio.run(asyncio.sleep(0.1))
    proc.kill()
    raise RuntimeError("the benchmark server did not start")
