"""``GET /console``: the page shell (no data: every fragment is fetched with the admin token) and its assets."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from license_server.admin_auth import refusal
from license_server.errors import ErrorCode
from license_server.http import json_error

HERE = Path(__file__).parent
STATIC = HERE / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "frame-src 'self' data:; script-src 'self'; object-src 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
}


async def console(request: web.Request) -> web.StreamResponse:
    """The shell is served to loopback peers (or any, with --admin-remote); it holds no data."""
    error = refusal(request)
    if error is not None and error.code is ErrorCode.ADMIN_NOT_LOOPBACK:
        return json_error(error)
    response = aiohttp_jinja2.render_template("shell.html", request, {})
    response.headers.update(SECURITY_HEADERS)
    return response


def setup(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    app.router.add_get("/console", console, name="console.shell")
    app.router.add_static("/console/static", STATIC, name="console.static")
