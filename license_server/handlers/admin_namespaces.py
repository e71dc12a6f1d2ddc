"""Admin API, namespaces: ``GET /admin/namespaces``, ``POST /admin/namespaces/{name}/reset``,
``DELETE /admin/namespaces/{name}``.

Namespaces appear on first use (a request under ``/ns/<name>/`` or with ``X-DRM-Namespace``).
A reset deletes everything stored in the namespace in one transaction: licenses, devices, audit,
reports, and its state documents (test clock, faults, revocations, rights overlay). A delete
resets it and stops listing it until it is used again; ``default`` can be reset, never deleted.
These routes act on the namespace they name, whichever namespace serves the request.
"""

from __future__ import annotations

import logging

from aiohttp import web

from license_server.admin_models import NamespaceCleared, NamespaceList, NamespaceSummary
from license_server.errors import DrmError, ErrorCode
from license_server.handlers.admin_common import reply
from license_server.namespaces import NAMESPACES, Namespaces
from license_server.store_api import valid_namespace

log = logging.getLogger(__name__)


def _named(request: web.Request) -> tuple[Namespaces, str]:
    name = request.match_info["name"]
    if not valid_namespace(name):
        raise DrmError(ErrorCode.INVALID_NAMESPACE, f"not a namespace name: {name[:60]!r}")
    return request.app[NAMESPACES], name


async def list_namespaces(request: web.Request) -> web.Response:
    namespaces = request.app[NAMESPACES]
    found = []
    for name in namespaces.names():
        counts = namespaces.stores.open(name).counts()
        found.append(NamespaceSummary(name=name, licenses=counts["licenses"], devices=counts["devices"],
                                      audit=counts["audit"]))
    return reply(NamespaceList(count=len(found), namespaces=found))


async def reset_namespace(request: web.Request) -> web.Response:
    namespaces, name = _named(request)
    namespaces.get(name)  # an unknown name is created (and counted against the limit), then emptied
    namespaces.reset(name)
    log.info("admin: namespace %s reset", name)
    return reply(NamespaceCleared(name=name, action="reset"))


async def delete_namespace(request: web.Request) -> web.Response:
    namespaces, name = _named(request)
    if name not in namespaces.names():
        raise DrmError(ErrorCode.ADMIN_NOT_FOUND, f"no namespace {name!r}")
    namespaces.delete(name)
    log.info("admin: namespace %s deleted", name)
    return reply(NamespaceCleared(name=name, action="deleted"))


def setup(app: web.Application) -> None:
    app.router.add_get("/admin/namespaces", list_namespaces, name="admin.namespaces")
    app.router.add_post("/admin/namespaces/{name}/reset", reset_namespace, name="admin.namespace_reset")
    app.router.add_delete("/admin/namespaces/{name}", delete_namespace, name="admin.namespace_delete")
