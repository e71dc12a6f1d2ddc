"""``GET/POST /admin/clock``: move the namespace's test clock (``--test-clock`` only).

The clock is the server's base clock plus an offset kept in the namespace's ``clock`` state
document, so every worker and replica (and only this namespace) sees the move from the next request.

Without ``--test-clock`` the route does not exist. Body of a POST:
``{"advance": "31d"}`` (or seconds as a number), ``{"set": "2027-02-15T00:00:00Z"}`` or
``{"reset": true}`` (undo every move). The clock stays within 1970..9000-01-01
(``CLOCK_OUT_OF_RANGE`` otherwise).
Like every admin route it needs the admin bearer token (see :mod:`license_server.admin_auth`).
"""

from __future__ import annotations

import json

from aiohttp import web

from license_server.admin_models import ClockChange, ClockState
from license_server.clock import Clock, ClockRangeError, from_iso, parse_duration, to_iso
from license_server.errors import DrmError, ErrorCode
from license_server.handlers.admin_common import body_model, invalid, reply
from license_server.http import SETTINGS
from license_server.namespaces import clock_offset, namespace_of
from license_server.store_api import CLOCK_DOCUMENT


def _state(clock: Clock) -> ClockState:
    now = clock.now()
    return ClockState(now=now, iso=to_iso(now) or "")


async def get_clock(request: web.Request) -> web.Response:
    return reply(_state(namespace_of(request).clock))


async def move_clock(request: web.Request) -> web.Response:
    """Write the namespace's ``clock`` document; the change is computed from the stored offset inside the
    store's transaction, so two concurrent moves both apply."""
    namespace = namespace_of(request)
    change = await body_model(request, ClockChange)
    try:
        if change.reset:
            how, value = "reset", 0
        elif change.advance is not None:
            how, value = "advance", parse_duration(str(change.advance))
        else:
            how, value = "set", from_iso(change.set or "")

        def write(current: str | None) -> str:
            return json.dumps({"offset": namespace.clock.offset_for(clock_offset(current), how, value)})

        namespace.clock.offset = clock_offset(namespace.store.update_document(CLOCK_DOCUMENT, write))
    except ClockRangeError as exc:
        raise DrmError(ErrorCode.CLOCK_OUT_OF_RANGE, str(exc)) from exc
    except (ValueError, OverflowError) as exc:
        raise invalid(exc, "clock change") from exc
    return reply(_state(namespace.clock))


def setup(app: web.Application) -> None:
    if app[SETTINGS].test_clock:
        app.router.add_get("/admin/clock", get_clock, name="admin.clock")
        app.router.add_post("/admin/clock", move_clock, name="admin.clock_move")
