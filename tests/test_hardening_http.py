"""Issue 20, defects 2 and 7: chunked bodies are read to the limit; big tokens reach our own size check;
malformed HTTP is one WARNING line, never a traceback."""

from __future__ import annotations

import asyncio
import logging

from device_emulator.cdm.widevine import WidevineCdm
from license_server.core.model import LicenseKind
from license_server.protocols.widevine import codec
from license_server.tokens import MAX_TOKEN_BYTES, TOKEN_HEADER


async def raw_exchange(client, request: bytes | list[bytes]) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` bytes as they are (a list: one write each, apart in time) and read the answer."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    for piece in [request] if isinstance(request, bytes) else request:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.002)
    answer = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def chunked(path: str, body: bytes, size: int) -> list[bytes]:
    """A chunked POST of ``body``, one chunk per write."""
    head = (f"POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return [head, *parts, b"0\r\n\r\n"]


async def test_valid_chunked_challenge_is_accepted(client, make_device):
    cdm = WidevineCdm(make_device("L1"))
    pending = cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY)
    status, headers, body = await raw_exchange(client, chunked("/widevine/license", pending.body, 7))
    assert status == 200, (headers, body[:300])
    cdm.process_license(pending, _dechunk(headers, body))


async def test_oversized_chunked_body_is_challenge_too_large(client):
    big = b"\x08" * (codec.MAX_MESSAGE_BYTES + 4096)
    status, headers, _ = await raw_exchange(client, chunked("/widevine/license", big, 16384))
    assert (status, headers.get("X-DRM-Error-Code")) == (413, "CHALLENGE_TOO_LARGE")


async def test_token_larger_than_our_limit_gets_our_code_and_mode(client, make_device):
    cdm = WidevineCdm(make_device("L1"))
    pending = cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY)
    oversized = "e30." + "A" * (MAX_TOKEN_BYTES + 100) + ".sig"
    response = await client.post("/widevine/license", data=pending.body, headers={TOKEN_HEADER: oversized})
    assert response.status == 401 and response.headers["X-DRM-Error-Code"] == "TOKEN_MALFORMED"
    assert response.headers["X-DRM-Mode"] == "development"


async def test_malformed_http_is_one_warning_line(client, caplog):
    caplog.set_level(logging.DEBUG)
    for request in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
                    b"POST /widevine/license HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n"):
        caplog.clear()
        status, _, _ = await raw_exchange(client, request)
        assert status == 400
        records = [r for r in caplog.records if r.name == "aiohttp.server"]
        assert records, "the bad request is logged"
        assert all(r.levelno == logging.WARNING and r.exc_info is None and "\n" not in r.getMessage()
                   for r in records), [(r.levelname, r.getMessage(), r.exc_info) for r in records]
        assert len(records) == 1


def _dechunk(headers: dict[str, str], body: bytes) -> bytes:
    if headers.get("Transfer-Encoding") != "chunked":
        return body
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, body = out + rest[:size], rest[size + 2:]
    return out
