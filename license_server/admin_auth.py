"""Who may use the admin API: one bearer token, loopback clients only by default.

Every request whose path is under ``/admin/`` (matched route or not, so an
unauthenticated caller cannot even probe which admin routes exist), and every
route named ``admin.*`` or ``metrics.*`` (``GET /metrics``) whatever its path,
passes :func:`admin_guard` first:

1. a peer that is not a loopback address gets ``403 ADMIN_NOT_LOOPBACK``
   unless the server runs with ``--admin-remote``;
2. ``Authorization: Bearer <token>`` must carry the admin token, compared in
   constant time; otherwise ``401 ADMIN_UNAUTHORIZED`` with
   ``WWW-Authenticate: Bearer``.

The token comes from ``--admin-token`` / ``DRM_SERVER_ADMIN_TOKEN``. When none
is configured, ``license-server serve`` generates one, prints it once to stderr
and writes it to ``<data_dir>/admin-token`` (mode 0600) for scripts; it is
never logged.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from license_server import crypto
from license_server.errors import DrmError, ErrorCode
from license_server.http import SETTINGS, render_error
from license_server.namespaces import split_path
from license_server.route_table import ADMIN_PREFIX, GUARDED_ROUTES, ROUTES, UNMATCHED, RouteTable, is_admin_path

ADMIN_TOKEN = web.AppKey("admin_token", str)
__all__ = ["ADMIN_PREFIX", "GUARDED_ROUTES", "admin_guard", "is_admin_path", "refusal", "setup"]
TOKEN_BYTES = 32
WWW_AUTHENTICATE = 'Bearer realm="license-server admin"'


def generate_token() -> str:
    """A fresh random token: 32 bytes, base64url without padding (43 characters)."""
    return base64.urlsafe_b64encode(crypto.random_bytes(TOKEN_BYTES)).rstrip(b"=").decode("ascii")


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` with mode 0600, atomically (temp file + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply if a stale temp file existed
        os.write(fd, (token + "\n").encode("ascii"))
    finally:
        os.close(fd)
    os.replace(temp, path)


def is_loopback_peer(remote: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for anything else or unknown."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def bearer_matches(header: str | None, token: str) -> bool:
    """Does an ``Authorization`` header carry ``token``? Constant time in the token's content."""
    if not header:
        return False
    scheme, _, presented = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return crypto.constant_time_equal(presented.strip().encode("utf-8", "replace"), token.encode("utf-8"))


def refusal(request: web.Request) -> DrmError | None:
    """Why this admin request is refused, or ``None`` if it may proceed."""
    if not request.app[SETTINGS].admin_remote and not is_loopback_peer(request.remote):
        return DrmError(ErrorCode.ADMIN_NOT_LOOPBACK,
                        "the admin API answers loopback clients only (server flag --admin-remote allows others)")
    if not bearer_matches(request.headers.get("Authorization"), request.app[ADMIN_TOKEN]):
        return DrmError(ErrorCode.ADMIN_UNAUTHORIZED)
    return None


@web.middleware
async def admin_guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    info = request.app[ROUTES].info(request.match_info.route)
    if info.guarded or (info is UNMATCHED and is_admin_path(split_path(request.path)[1])):  # unknown /admin/ paths too
        error = refusal(request)
        if error is not None:
            response = render_error(request, error)
            if error.code is ErrorCode.ADMIN_UNAUTHORIZED:
                response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
            return response
        try:
            return await handler(request)
        except web.HTTPNotFound:
            error = DrmError(ErrorCode.ADMIN_NOT_FOUND, f"no admin route {request.method} {request.path[:120]}")
            return render_error(request, error)
    return await handler(request)


def setup(app: web.Application) -> None:
    """Install the guard; without a configured token the app gets a random one nobody knows."""
    app[ADMIN_TOKEN] = app[SETTINGS].admin_token or generate_token()
    if ROUTES not in app:
        app[ROUTES] = RouteTable()
    app.middlewares.append(admin_guard)
