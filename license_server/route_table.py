"""What the middlewares need to know about each route, decided once per route.

The first request that resolves a route computes its :class:`RouteInfo` (name,
family, dialect, whether the admin guard protects it, what fault injection
calls it); later requests look it up. So a middleware that does not apply to a
route costs one dictionary lookup there, not string work per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from license_server.dialects import NAMES
from license_server.faults import fault_dialect
from license_server.metrics import NO_ROUTE

ADMIN_PREFIX = "/admin"
GUARDED_ROUTES = ("admin.", "metrics.")  # route-name prefixes the admin guard protects wherever they are mounted


def is_admin_path(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """What the middlewares need to know about one route."""

    name: str
    family: str
    dialect: str | None
    guarded: bool  # the admin guard checks it (admin API, /metrics)
    fault_target: str | None  # what injected faults call it; None: faults never touch it

    @classmethod
    def of(cls, route: AbstractRoute) -> RouteInfo:
        """Computed once per route."""
        name = route.name
        if not name:
            return UNMATCHED
        family = name.split(".", 1)[0]
        resource = route.resource
        path = resource.canonical if resource is not None else ""
        return cls(name=name, family=family, dialect=family if family in NAMES else None,
                   guarded=name.startswith(GUARDED_ROUTES) or is_admin_path(path), fault_target=fault_dialect(name))


UNMATCHED = RouteInfo(name=NO_ROUTE, family=NO_ROUTE, dialect=None, guarded=False, fault_target=None)


class RouteTable:
    """Route facts, computed on a route's first request and then looked up."""

    def __init__(self) -> None:
        self._routes: dict[AbstractRoute, RouteInfo] = {}

    def info(self, route: AbstractRoute | None) -> RouteInfo:
        if route is None:
            return UNMATCHED
        found = self._routes.get(route)
        if found is None:
            if route.resource is None:  # aiohttp's per-request system route (404, 405): never cached
                return UNMATCHED
            found = self._routes[route] = RouteInfo.of(route)
        return found


ROUTES = web.AppKey("route_table", RouteTable)
