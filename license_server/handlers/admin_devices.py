"""Admin API, devices and revocations.

``GET /admin/devices``, ``GET /admin/devices/{device_id}`` (with its licenses),
``GET /admin/revocations``, ``POST /admin/revocations`` (a device, a whole
system id or model, or a content key id) and ``DELETE
/admin/revocations/{kind}/{value}`` to un-revoke.

Revocations live in the namespace's ``revocations`` state document
(:mod:`license_server.revocations`), written in one store transaction; every
worker re-reads it when the store's state generation moves, so every dialect
refuses a revoked device with ``DEVICE_REVOKED`` from the next request on.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from license_server.admin_models import (
    DeviceDetail,
    DeviceList,
    DeviceSummary,
    Revocation,
    RevocationList,
    RevocationRequest,
)
from license_server.core.attestation import Revocations
from license_server.errors import DrmError, ErrorCode
from license_server.handlers.admin_common import body_model, reply
from license_server.handlers.admin_licenses import summary
from license_server.http import KEYRING
from license_server.keyring import Keyring
from license_server.namespaces import namespace_of
from license_server.revocations import RevocationList as StoredRevocations
from license_server.revocations import note_key, revocation_target, stored_as

log = logging.getLogger(__name__)

KINDS = ("device", "system_id", "model", "key_id")
REQUEST_FIELDS = {"device": "device_id", "system_id": "system_id", "model": "model", "key_id": "key_id"}


def _device(row: dict[str, Any], revoked: Revocations) -> DeviceSummary:
    by = []
    if row["device_id"] in revoked.devices:
        by.append("device")
    if row["system_id"] in revoked.system_ids:
        by.append("system_id")
    return DeviceSummary(**{k: row[k] for k in DeviceSummary.model_fields if k in row},
                         revoked=bool(by), revoked_by=by)


async def list_devices(request: web.Request) -> web.Response:
    revoked = namespace_of(request).service.revocations.current()
    devices = [_device(row, revoked) for row in namespace_of(request).store.devices()]
    return reply(DeviceList(count=len(devices), devices=devices))


async def show_device(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"].lower()
    store = namespace_of(request).store
    row = store.device(device_id) if len(device_id) <= 128 else None
    if row is None:
        raise DrmError(ErrorCode.DEVICE_NOT_FOUND, f"no device {device_id[:128]!r} on this server")
    now = namespace_of(request).clock.now()
    licenses = [summary(r, now) for r in store.licenses(device_id=device_id)]
    base = _device(row, namespace_of(request).service.revocations.current())
    return reply(DeviceDetail(**base.model_dump(), licenses=licenses))


def _document(revocations: StoredRevocations) -> dict[str, Any]:
    try:
        return revocations.document()
    except ValueError as exc:  # hand-edited into something unreadable: say so, do not overwrite it
        message = f"the revocation list is unreadable ({exc}); fix or replace it"
        raise DrmError(ErrorCode.INTERNAL_ERROR, message) from exc


def _entries(doc: dict[str, Any], keyring: Keyring) -> list[Revocation]:
    def note(kind: str, value: str) -> dict[str, Any]:
        found = doc["notes"].get(note_key(kind, value))
        return found if isinstance(found, dict) else {}

    entries = []
    for device_id in doc["devices"]:
        entries.append(Revocation(kind="device", value=str(device_id), **note("device", str(device_id))))
    for system_id in doc["system_ids"]:
        model = keyring.model_by_system_id(int(system_id))
        entries.append(Revocation(kind="system_id", value=str(system_id), model=model.name if model else None,
                                  **note("system_id", str(system_id))))
    for kid in doc["key_ids"]:
        entries.append(Revocation(kind="key_id", value=str(kid), **note("key_id", str(kid))))
    return entries


async def list_revocations(request: web.Request) -> web.Response:
    return _revocation_list(request)


async def revoke(request: web.Request) -> web.Response:
    wanted = await body_model(request, RevocationRequest)
    keyring, revocations = request.app[KEYRING], namespace_of(request).service.revocations
    kind, value = next((kind, str(getattr(wanted, field))) for kind, field in REQUEST_FIELDS.items()
                       if getattr(wanted, field) is not None)
    target = revocation_target(kind, value, keyring)
    _document(revocations)  # refuse before writing if the file is unreadable
    revocations.revoke(**target, reason=wanted.reason, now=namespace_of(request).clock.now())
    log.info("admin: revoked %s %s", kind, value)
    stored = stored_as(target)
    entry = next(e for e in _entries(_document(revocations), keyring) if (e.kind, e.value) == stored)
    return reply(entry, status=201)


async def unrevoke(request: web.Request) -> web.Response:
    kind, value = request.match_info["kind"], request.match_info["value"]
    if kind not in KINDS:
        raise DrmError(ErrorCode.ADMIN_NOT_FOUND, f"no revocation kind {kind[:40]!r} (use {', '.join(KINDS)})")
    revocations = namespace_of(request).service.revocations
    _document(revocations)
    if not revocations.unrevoke(**revocation_target(kind, value, request.app[KEYRING])):
        raise DrmError(ErrorCode.ADMIN_NOT_FOUND, f"{kind} {value[:80]!r} is not revoked")
    log.info("admin: un-revoked %s %s", kind, value)
    return _revocation_list(request)


def _revocation_list(request: web.Request) -> web.Response:
    doc = _document(namespace_of(request).service.revocations)
    return reply(RevocationList(revocations=_entries(doc, request.app[KEYRING])))


def setup(app: web.Application) -> None:
    app.router.add_get("/admin/devices", list_devices, name="admin.devices")
    app.router.add_get("/admin/devices/{device_id}", show_device, name="admin.device")
    app.router.add_get("/admin/revocations", list_revocations, name="admin.revocations")
    app.router.add_post("/admin/revocations", revoke, name="admin.revoke")
    app.router.add_delete("/admin/revocations/{kind}/{value}", unrevoke, name="admin.unrevoke")
