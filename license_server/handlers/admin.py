"""Mounts the admin API (``/admin/...``), ``GET /metrics`` and ``GET /openapi.json``.

``/metrics`` (Prometheus text format, route ``metrics.page``) is guarded by the
admin guard exactly like the admin API: bearer token, loopback peers
unless ``--admin-remote``.

Order matters: the admin guard (bearer token, loopback peers), the namespace
middleware and the fault injector are appended after the error middleware, so
they run inside it and their refusals and injected errors get the dialects'
error shapes; an admin request is authorized before its namespace is opened.
"""

from __future__ import annotations

from aiohttp import web

from license_server import admin_auth
from license_server.handlers import (
    admin_clock,
    admin_devices,
    admin_faults,
    admin_licenses,
    admin_namespaces,
    admin_rights,
    admin_streams,
)
from license_server.http import METRICS
from license_server.metrics import CONTENT_TYPE
from license_server.namespaces import namespace_middleware, namespace_of
from license_server.openapi import build_document

OPENAPI = web.AppKey("openapi_document", dict)


async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI document; public (it is documentation, and holds no secrets)."""
    prefix = namespace_of(request).url_prefix
    document = request.app[OPENAPI]
    return web.json_response({**document, "servers": [{"url": prefix}]} if prefix else document)


async def metrics_page(request: web.Request) -> web.Response:
    """Every counter and histogram of this server (summed over the workers with ``--workers N``)."""
    response = web.Response(body=request.app[METRICS].exposition())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


def setup(app: web.Application) -> None:
    admin_auth.setup(app)
    app.middlewares.append(namespace_middleware)  # after the guard, before the fault injector
    admin_faults.install(app)
    admin_clock.setup(app)
    admin_licenses.setup(app)
    admin_devices.setup(app)
    admin_faults.setup(app)
    admin_rights.setup(app)
    admin_streams.setup(app)
    admin_namespaces.setup(app)
    app[OPENAPI] = build_document()
    app.router.add_get("/openapi.json", openapi_document, name="health.openapi")
    app.router.add_get("/metrics", metrics_page, name="metrics.page")
