"""Admin API, licenses: ``GET /admin/licenses``, ``GET /admin/licenses/{license_id}``,
``POST /admin/licenses/{license_id}/expire``.

States are computed, not just read: a license past its deadline shows as
``expired`` (:func:`core.lifecycle.current_state`) even if nothing has touched
it since. Force-expiry is an ordinary lifecycle transition (``expire``),
recorded with its audit entry; the device's next renewal is then refused with
``LICENSE_EXPIRED``. Key material (the ``secrets`` column) never leaves the store.
"""

from __future__ import annotations

import itertools
from contextlib import closing

from aiohttp import web

from license_server.admin_models import (
    AuditEntry,
    ForceExpire,
    LicenseDetail,
    LicenseList,
    LicenseQuery,
    LicenseSummary,
)
from license_server.core.lifecycle import Event, State, current_state, transition
from license_server.core.ports import LicenseRecord
from license_server.errors import DrmError, ErrorCode
from license_server.handlers.admin_common import body_model, query_model, reply
from license_server.namespaces import namespace_of
from license_server.store_sql import SqlStore as Store


def summary(record: LicenseRecord, now: int) -> LicenseSummary:
    """The API view of a stored license, its state brought up to ``now``."""
    state = current_state(State(record.state), record.policy, record.license_start, now)
    return LicenseSummary(
        license_id=record.license_id, system=record.system, device_id=record.device_id,
        account=record.account, tier=record.tier, content_id=record.content_id, kind=record.kind,
        state=state.value, stored_state=record.state, version=record.version, kids=record.kids,
        tracks=record.tracks, issued_at=record.issued_at, updated_at=record.updated_at,
        license_start=record.license_start, first_used_at=record.first_used_at, released_at=record.released_at,
        expires_at=record.deadline(),
    )


def detail(store: Store, record: LicenseRecord, now: int) -> LicenseDetail:
    audit = [AuditEntry(**row) for row in store.audit_trail(license_id=record.license_id, limit=200)]
    return LicenseDetail(**summary(record, now).model_dump(), policy=record.policy.as_dict(), audit=audit)


def _record(store: Store, license_id: str) -> LicenseRecord:
    record = store.license(license_id) if len(license_id) <= 128 else None
    if record is None:
        raise DrmError(ErrorCode.LICENSE_NOT_FOUND, f"no license {license_id[:128]!r} on this server")
    return record


async def list_licenses(request: web.Request) -> web.Response:
    query = query_model(request, LicenseQuery)
    filters = {"device_id": query.device_id.lower() if query.device_id else None,
               "content_id": query.content_id, "system": query.system, "account": query.account}
    now = namespace_of(request).clock.now()
    store = namespace_of(request).store
    if query.state is None:  # the page is the first ``limit`` rows, read through an index
        views = [summary(r, now) for r in store.licenses(limit=query.limit, **filters)]
    else:  # the state is computed (a deadline may have passed): read lazily until the page is full
        with closing(store.iter_licenses(limit=None, **filters)) as records:
            matching = (v for v in (summary(r, now) for r in records) if v.state == query.state)
            views = list(itertools.islice(matching, query.limit))
    return reply(LicenseList(count=len(views), licenses=views))


async def show_license(request: web.Request) -> web.Response:
    store = namespace_of(request).store
    record = _record(store, request.match_info["license_id"])
    return reply(detail(store, record, namespace_of(request).clock.now()))


async def expire_license(request: web.Request) -> web.Response:
    """Force-expire: ``issued``/``in_use``/``renewed`` -> ``expired``; again: no change.

    A released license cannot be expired (``LICENSE_RELEASED``): its slot is already free.
    """
    change = await body_model(request, ForceExpire, optional=True)
    store, now = namespace_of(request).store, namespace_of(request).clock.now()
    record = _record(store, request.match_info["license_id"])
    state = current_state(State(record.state), record.policy, record.license_start, now)
    target = transition(state, Event.EXPIRE)
    if State(record.state) is not target:
        why = f": {change.reason}" if change.reason else ""
        store.record_lifecycle(record.license_id, event=Event.EXPIRE.value, state=target.value, now=now,
                               system=record.system, message=f"force-expired through the admin API{why}")
    return reply(detail(store, _record(store, record.license_id), now))


def setup(app: web.Application) -> None:
    app.router.add_get("/admin/licenses", list_licenses, name="admin.licenses")
    app.router.add_get("/admin/licenses/{license_id}", show_license, name="admin.license")
    app.router.add_post("/admin/licenses/{license_id}/expire", expire_license, name="admin.license_expire")
