"""The outermost middleware: request id, mode header, latency metrics and the access log.

What a route is (name, family, dialect) comes from the app's
:class:`~license_server.route_table.RouteTable`, decided once per route; the
entitlement mode is fixed at start.

Every response carries ``X-Request-Id``: the client's own id when it sends a
sane short token (letters, digits, ``.``, ``_``, ``-``; at most 64), else a
fresh random one. Log lines written while the request is served carry the same
id (:data:`license_server.logs.request_id_var`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from time import perf_counter

from aiohttp import web
from aiohttp.typedefs import Middleware

from license_server import crypto
from license_server.errors import ERROR_CODE_HEADER
from license_server.http import METRICS, MODE_HEADER, SETTINGS
from license_server.logs import access_log, request_id_var
from license_server.route_table import ROUTES, RouteTable

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]




def request_id(sent: str | None) -> str:
    """Echo a sane client id, else a fresh one (16 hex digits)."""
    if sent is not None and _SANE_ID.match(sent):
        return sent
    return crypto.random_bytes(8).hex()


def observe_middleware(app: web.Application) -> Middleware:  # aiohttp's middleware protocol
    """Build the middleware for ``app`` (its settings and metrics are fixed by now)."""
    mode = "strict" if app[SETTINGS].require_token else "development"
    access = app[SETTINGS].log_format == "json"
    metrics = app[METRICS]
    table = app[ROUTES] = RouteTable()

    def done(request: web.Request, status: int, error_code: str | None, rid: str, start: float) -> None:
        elapsed = perf_counter() - start
        info = table.info(request.match_info.route)
        metrics.observe(info.family, status, elapsed)
        if access:
            access_log.info("%s %s %d", request.method, info.name, status, extra={
                "request_id": rid, "method": request.method, "route": info.name, "status": status,
                "duration_ms": round(elapsed * 1000, 3), "dialect": info.dialect, "error_code": error_code})

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = perf_counter()
        rid = request_id(request.headers.get(REQUEST_ID_HEADER))
        reset = request_id_var.set(rid)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers[MODE_HEADER] = mode
            exc.headers[REQUEST_ID_HEADER] = rid
            done(request, exc.status, exc.headers.get(ERROR_CODE_HEADER), rid, start)
            raise
        finally:
            request_id_var.reset(reset)
        if not response.prepared:
            response.headers[MODE_HEADER] = mode
            response.headers[REQUEST_ID_HEADER] = rid
        done(request, response.status, response.headers.get(ERROR_CODE_HEADER), rid, start)
        return response

    return observe
