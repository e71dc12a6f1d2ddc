"""Fault injection over HTTP: the middleware that applies faults, and the admin
routes ``GET/POST/DELETE /admin/faults`` and ``DELETE /admin/faults/{fault_id}``.

The middleware runs after routing, so the matched route tells the dialect
(:func:`license_server.faults.fault_dialect`, decided once per route in the
app's :mod:`route table <license_server.route_table>`). Errors are rendered by the
dialect's own error renderer (:func:`license_server.http.render_error`), so a
Widevine player gets a Widevine error message, a PlayReady player a SOAP fault.

Content matching looks at what is visible without decoding a challenge: the
``content`` (or ``content_id``) query parameter, a JSON body's top-level
``content_id``/``content`` member, and the first segment of a ``/media/`` path.
Binary challenges (Widevine, PlayReady, FairPlay) name their content only
inside the signed message, so target them with a license URL that carries
``?content=<id>``, or use a dialect-wide fault.

Faults belong to the request's namespace (its ``faults`` state document), so they apply on every
worker and replica, never in another namespace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from license_server import jsonsafe
from license_server.admin_models import FaultList, FaultsCleared, FaultSpec
from license_server.errors import DrmError, ErrorCode
from license_server.handlers.admin_common import body_model, reply
from license_server.http import render_error
from license_server.namespaces import namespace_of
from license_server.route_table import ROUTES

log = logging.getLogger(__name__)

CONTENT_QUERY = ("content", "content_id")
CONTENT_MEMBERS = ("content_id", "content")


async def request_content_ids(request: web.Request) -> frozenset[str]:
    """The content ids a request names where they can be seen without parsing a challenge."""
    found = {v for name in CONTENT_QUERY for v in request.query.getall(name, [])}
    path = request.match_info.get("path")
    if request.match_info.route.name == "media.file" and path:
        found.add(path.split("/", 1)[0])
    if request.body_exists and request.content_type == "application/json":
        body = await request.read()  # cached by aiohttp; http.read_body hands the same bytes to the handler
        try:
            doc = jsonsafe.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            found.update(doc[m] for m in CONTENT_MEMBERS if isinstance(doc.get(m), str))
    return frozenset(found)


@web.middleware
async def fault_injector(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    namespace = namespace_of(request)
    book = namespace.faults
    # No fault configured (the normal case): one truth test. CORS preflights are the browser's, not the
    # player's: never disturbed, never counted. The route's fault target was decided once (route table).
    if not book or request.method == "OPTIONS":
        return await handler(request)
    dialect = request.app[ROUTES].info(request.match_info.route).fault_target
    if dialect is None:
        return await handler(request)
    now = namespace.clock.now()
    content_ids = await request_content_ids(request) if book.wants_content(dialect, now) else frozenset()
    hit = book.take(dialect, content_ids, now)
    if hit is None:
        return await handler(request)
    log.info("injected fault(s) %s on %s %s", ",".join(hit.applied), request.method, request.path)
    if hit.latency_ms:
        await asyncio.sleep(hit.latency_ms / 1000)
    fault = hit.answer
    if fault is None:
        return await handler(request)
    if fault.spec.action == "drop":
        if request.transport is not None:
            request.transport.close()
        # Nothing is sent: aiohttp finds the transport closed and drops this response quietly.
        return web.Response(status=503)
    code = fault.spec.error_code or ErrorCode.INJECTED_FAULT
    response = render_error(request, DrmError(code, f"{code.summary} (injected fault {fault.id})"))
    if fault.spec.http_status is not None:
        response.set_status(fault.spec.http_status)
    return response


async def list_faults(request: web.Request) -> web.Response:
    faults = namespace_of(request).faults.active(namespace_of(request).clock.now())
    return reply(FaultList(faults=[f.view() for f in faults]))


async def add_fault(request: web.Request) -> web.Response:
    spec = await body_model(request, FaultSpec)
    namespace = namespace_of(request)
    fault = namespace.faults.add(spec, namespace.clock.now())
    log.info("admin: fault %s added (%s on %s)", fault.id, spec.action, spec.dialect or "every dialect")
    return reply(fault.view(), status=201)


async def clear_faults(request: web.Request) -> web.Response:
    return reply(FaultsCleared(cleared=namespace_of(request).faults.clear()))


async def remove_fault(request: web.Request) -> web.Response:
    fault_id = request.match_info["fault_id"]
    if not namespace_of(request).faults.remove(fault_id):
        raise DrmError(ErrorCode.ADMIN_NOT_FOUND, f"no fault {fault_id[:40]!r}")
    return reply(FaultsCleared(cleared=1))


def install(app: web.Application) -> None:
    """The middleware (append after the admin guard); each namespace keeps its own faults."""
    app.middlewares.append(fault_injector)


def setup(app: web.Application) -> None:
    app.router.add_get("/admin/faults", list_faults, name="admin.faults")
    app.router.add_post("/admin/faults", add_fault, name="admin.fault_add")
    app.router.add_delete("/admin/faults", clear_faults, name="admin.faults_clear")
    app.router.add_delete("/admin/faults/{fault_id}", remove_fault, name="admin.fault_remove")
