"""Blocking HTTP for the device emulator (the CLI is one request at a time)."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from device_emulator.errors import TransportError
from license_server.errors import ERROR_CODE_HEADER

USER_AGENT = "drm-license-emulator-device/0.1"


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def error_code(self) -> str | None:
        return self.headers.get(ERROR_CODE_HEADER.lower())


def post(url: str, body: bytes, *, content_type: str = "application/octet-stream",
         headers: dict[str, str] | None = None, timeout: float = 30.0) -> HttpReply:
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", content_type)
    request.add_header("User-Agent", USER_AGENT)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    return _send(request, timeout)


def get(url: str, *, headers: dict[str, str] | None = None, timeout: float = 30.0) -> HttpReply:
    request = urllib.request.Request(url, method="GET")
    request.add_header("User-Agent", USER_AGENT)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    return _send(request, timeout)


def _send(request: urllib.request.Request, timeout: float) -> HttpReply:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpReply(response.status, _lower(response.headers.items()), response.read())
    except urllib.error.HTTPError as exc:
        return HttpReply(exc.code, _lower(exc.headers.items()), exc.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransportError(f"cannot reach {request.full_url}: {reason}") from exc


def _lower(items) -> dict[str, str]:
    return {name.lower(): value for name, value in items}
