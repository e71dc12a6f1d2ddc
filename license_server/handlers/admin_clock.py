"""``GET/POST /admin/clock``: move the server's controlled clock (``--test-clock`` only).

Without ``--test-clock`` the route does not exist. Body of a POST:
``{"advance": "31d"}`` (or seconds as a number), ``{"set": "2027-02-15T00:00:00Z"}`` or
``{"reset": true}`` (undo every move). The clock stays within 1970..9000-01-01
(``CLOCK_OUT_OF_RANGE`` otherwise).
Like every admin route it needs the admin bearer token (see :mod:`license_server.admin_auth`).
"""

from __future__ import annotations

from aiohttp import web

from license_server.admin_models import ClockChange, ClockState
from license_server.clock import Clock, ClockRangeError, ControlledClock, from_iso, parse_duration, to_iso
from license_server.errors import DrmError, ErrorCode
from license_server.handlers.admin_common import body_model, invalid, reply
from license_server.http import CLOCK, SETTINGS


def _state(clock: Clock) -> ClockState:
    now = clock.now()
    return ClockState(now=now, iso=to_iso(now) or "")


async def get_clock(request: web.Request) -> web.Response:
    return reply(_state(request.app[CLOCK]))


async def move_clock(request: web.Request) -> web.Response:
    clock = request.app[CLOCK]
    if not isinstance(clock, ControlledClock):  # setup() adds the route for a controlled clock only
        raise web.HTTPNotFound()
    change = await body_model(request, ClockChange)
    try:
        if change.reset:
            clock.reset()
        elif change.advance is not None:
            clock.advance(parse_duration(str(change.advance)))
        else:
            clock.set(from_iso(change.set or ""))
    except ClockRangeError as exc:
        raise DrmError(ErrorCode.CLOCK_OUT_OF_RANGE, str(exc)) from exc
    except (ValueError, OverflowError) as exc:
        raise invalid(exc, "clock change") from exc
    return reply(_state(clock))


def setup(app: web.Application) -> None:
    if app[SETTINGS].test_clock and isinstance(app[CLOCK], ControlledClock):
        app.router.add_get("/admin/clock", get_clock, name="admin.clock")
        app.router.add_post("/admin/clock", move_clock, name="admin.clock_move")
