"""Admin API, stream sessions: ``GET /admin/streams`` and ``POST /admin/streams/{session_id}/end``.

Lists the open (live) stream sessions by account with their leases, or every
session with ``?all=true``; an operator may end one, after which its next
heartbeat is refused with ``STREAM_EVICTED`` and its slot is free at once.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from license_server.core.streams import StreamSession
from license_server.errors import DrmError, ErrorCode
from license_server.handlers.admin_common import body_model, query_model, reply
from license_server.namespaces import namespace_of


class StreamQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str | None = Field(None, max_length=128, description="Only this account's sessions.")
    all: bool = Field(False, description="Include closed, evicted, ended and lapsed sessions.")


class StreamView(BaseModel):
    session_id: str
    account: str
    system: str
    device_id: str | None
    content_id: str
    license_id: str = Field(description="The license that last opened or renewed the session.")
    state: str = Field(description="open | closed (release, Secure Stop, lease end) | evicted | ended (operator)")
    live: bool = Field(description="Open and within lease plus grace: it holds one of the account's slots.")
    opened_at: int
    renewed_at: int
    lease_until: int
    lease_remaining: int
    grace: int
    max_streams: int
    mode: str
    heartbeats: int
    ended_at: int | None
    end_reason: str | None


class AccountStreams(BaseModel):
    account: str
    live: int
    sessions: list[StreamView]


class StreamList(BaseModel):
    count: int
    accounts: list[AccountStreams]


class EndStream(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=200)


def view(session: StreamSession, now: int) -> StreamView:
    return StreamView.model_validate(session.public(now))


async def list_streams(request: web.Request) -> web.Response:
    query = query_model(request, StreamQuery)
    namespace = namespace_of(request)
    now = namespace.clock.now()
    sessions = namespace.store.streams(account=query.account, now=now, include_ended=query.all)
    accounts: dict[str, list[StreamView]] = {}
    for session in sessions:
        accounts.setdefault(session.account, []).append(view(session, now))
    return reply(StreamList(count=len(sessions), accounts=[
        AccountStreams(account=name, live=sum(v.live for v in views), sessions=views)
        for name, views in accounts.items()]))


async def end_stream(request: web.Request) -> web.Response:
    change = await body_model(request, EndStream, optional=True)
    namespace = namespace_of(request)
    now = namespace.clock.now()
    session_id = request.match_info["session_id"][:128]
    reason = "ended through the admin API" + (f": {change.reason}" if change.reason else "")
    session = namespace.store.end_stream(session_id, now=now, reason=reason)
    if session is None:
        raise DrmError(ErrorCode.ADMIN_NOT_FOUND, f"no stream session {session_id!r}")
    return reply(view(session, now))


def setup(app: web.Application) -> None:
    app.router.add_get("/admin/streams", list_streams, name="admin.streams")
    app.router.add_post("/admin/streams/{session_id}/end", end_stream, name="admin.stream_end")
