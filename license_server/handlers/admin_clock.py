"""``GET/POST /admin/clock``: move the server's controlled clock (``--test-clock`` only).

Without ``--test-clock`` the route does not exist. Body of a POST:
``{"advance": "31d"}`` (or seconds as a number) or ``{"set": "2027-02-15T00:00:00Z"}``.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ValidationError, model_validator

from license_server.clock import ControlledClock, from_iso, parse_duration, to_iso
from license_server.errors import DrmError, ErrorCode
from license_server.http import CLOCK, SETTINGS


class ClockChange(BaseModel):
    advance: str | int | None = None
    set: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "ClockChange":
        if (self.advance is None) == (self.set is None):
            raise ValueError('give exactly one of "advance" or "set"')
        return self


def _state(clock: ControlledClock) -> dict:
    now = clock.now()
    return {"now": now, "iso": to_iso(now)}


async def get_clock(request: web.Request) -> web.Response:
    return web.json_response(_state(request.app[CLOCK]))


async def move_clock(request: web.Request) -> web.Response:
    clock = request.app[CLOCK]
    try:
        change = ClockChange.model_validate(await request.json())
        if change.advance is not None:
            clock.advance(parse_duration(str(change.advance)))
        else:
            clock.set(from_iso(change.set or ""))
    except (ValidationError, ValueError) as exc:
        message = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise DrmError(ErrorCode.MALFORMED_CHALLENGE, f"bad clock change: {message}") from exc
    return web.json_response(_state(clock))


def setup(app: web.Application) -> None:
    if app[SETTINGS].test_clock and isinstance(app[CLOCK], ControlledClock):
        app.router.add_get("/admin/clock", get_clock, name="admin.clock")
        app.router.add_post("/admin/clock", move_clock, name="admin.clock_move")
