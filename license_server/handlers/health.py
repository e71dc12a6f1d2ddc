"""``GET /healthz``: liveness plus what this server is serving."""

from __future__ import annotations

import os

from aiohttp import web

from license_server import __version__
from license_server.http import KEYRING, SETTINGS
from license_server.namespaces import namespace_of


async def healthz(request: web.Request) -> web.Response:
    app, namespace = request.app, namespace_of(request)
    return web.json_response(
        {
            "status": "ok",
            "version": __version__,
            "time": namespace.clock.now(),
            "namespace": namespace.name,
            "test_clock": app[SETTINGS].test_clock,
            "mode": "strict" if app[SETTINGS].require_token else "development",
            "workers": app[SETTINGS].workers,
            "process": os.getpid(),
            "public_test_keys": app[KEYRING].is_public_test_keyring,
            "schema_version": namespace.store.schema_version,
            "systems": sorted({n.split(".")[0] for n in app.router.named_resources() if "." in n}
                              - {"health", "admin"}),
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, name="health.healthz")
