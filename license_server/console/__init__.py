"""The web console (``GET /console``) and the inspector's HTTP endpoint (``POST /admin/inspect``).

Mounted by one line of the app factory, after the admin API (whose guard
protects every ``/admin/`` path, the console's data fragments included).
"""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    from license_server.console import inspect_api, pages, shell

    inspect_api.setup(app)
    shell.setup(app)
    pages.setup(app)
