"""`license-server bench`: the load generator's HTTP reading, and a short real run."""

from __future__ import annotations

import asyncio
import re

from license_server.bench import _read_response
from tests.conftest import run_cli


def read(raw: bytes) -> tuple[int, str | None, bytes]:
    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        answer = await _read_response(reader)
        return (*answer, await reader.read())

    return asyncio.run(go())


def test_response_reading_keeps_the_connection_in_step() -> None:
    first = b"HTTP/1.1 403 Forbidden\r\nX-DRM-Error-Code: DEVICE_REVOKED\r\nContent-Length: 5\r\n\r\nabcde"
    second = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    status, code, rest = read(first + second)
    assert (status, code) == (403, "DEVICE_REVOKED") and rest == second


def test_a_short_benchmark_against_a_spawned_two_worker_server() -> None:
    result = run_cli("bench", "--workers", "2", "--duration", "1", "--requests", "300", "--devices", "2",
                     "--concurrency", "4", module="license_server.cli")
    assert result.returncode == 0, result.stderr
    granted = int(re.search(r"licenses granted\s+(\d+)", result.stdout).group(1))
    assert granted > 0 and re.search(r"errors\s+0\b", result.stdout)
    assert re.search(r"throughput\s+\d+ licenses/s", result.stdout) and "latency p99" in result.stdout
