"""What the runner can learn about and do to the target: probe, server clock, revocations.

Capabilities (the ``needs`` a check may declare):

``test-clock``
    ``GET /admin/clock`` answers 200 (with ``Authorization: Bearer <admin token>``
    when one is given): the server clock can be moved.
``revocation``
    The runner can revoke a device or a system id on the target: through the
    admin API (``POST /admin/revocations``, un-revoked with ``DELETE``) when
    ``GET /admin/revocations`` answers 200 with the admin token, or else, for a
    server it spawned, by writing the revocations document in its store
    (the server re-reads it when it changes).
``tokens``
    ``GET /healthz`` reports a token ``mode`` (development or strict): the
    server verifies ``X-DRM-Token`` entitlement tokens.
``admin``
    The admin API answers with the token (``GET /admin/licenses``): the checks
    may read the server's own view of a license (e.g. ``released``).
``rights``
    ``GET /admin/rights`` answers 200 with the admin token: a check may lower
    a cap or add a title rule (``PUT /admin/rights``, ``PATCH
    /admin/rights/titles/{id}``) and restores the previous rights afterwards
    (:mod:`conformance.rights_admin`).

Every change a check makes to the target is undone when the check ends, so
checks stay independent of their order.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conformance.catalog import Context, NotApplicable
from device_emulator import transport

DEVICE_LEAD = 2  # seconds emulated devices run ahead of the server clock
NEEDS = ("test-clock", "revocation", "admin", "tokens", "rights")


def probe(server: str, *, admin_token: str | None = None, data_dir: Path | None = None) -> tuple[dict, dict]:
    """Target info from ``/healthz``, and the capabilities the checks may need."""
    from license_server.clock import wall_clock_now

    info: dict[str, Any] = {}
    offset = 0
    try:
        reply = transport.get(server.rstrip("/") + "/healthz", timeout=10)
        info = json.loads(reply.body) if reply.status == 200 else {"healthz_status": reply.status}
        if isinstance(info.get("time"), int):
            offset = info["time"] - wall_clock_now()
    except (transport.TransportError, ValueError) as exc:
        info = {"healthz_error": str(exc)}
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}

    def status(path: str) -> int | None:
        try:
            return transport.get(server.rstrip("/") + path, headers=headers, timeout=10).status
        except transport.TransportError:
            return None

    clock_status, revocations_status, licenses_status, rights_status = (
        status("/admin/clock"), status("/admin/revocations"), status("/admin/licenses?limit=1"),
        status("/admin/rights"))
    via = ("admin API (POST/DELETE /admin/revocations)" if revocations_status == 200 else
           "the revocations document in the spawned server's store" if data_dir is not None else None)
    capabilities = {
        "test-clock": clock_status == 200,
        "revocation": via is not None,
        "admin": licenses_status == 200,
        "tokens": "mode" in info,
        "rights": rights_status == 200,
        "token_mode": info.get("mode"),
        "admin_token": bool(admin_token),
        "admin_status": {"clock": clock_status, "revocations": revocations_status, "licenses": licenses_status,
                         "rights": rights_status},
        "revocation_via": via,
        "server_clock_offset": offset,
    }
    return info, capabilities


def device_clock_offset(skew: int) -> int:
    """How far to set emulated devices' clocks from the wall clock so they follow the server's.

    Whole-second clocks read a moment apart differ by a second either way, and a device
    clock *behind* the server would see a fresh license start in its future (not yet
    valid). So devices follow the server's skew (a moved test clock) and run
    :data:`DEVICE_LEAD` seconds ahead of it, well inside every freshness window.
    """
    return skew + DEVICE_LEAD


def need_reason(need: str, capabilities: dict[str, Any]) -> str:
    """Why a check that needs ``need`` is not applicable to this target."""
    statuses = capabilities.get("admin_status") or {}
    why = "wrong admin token" if capabilities.get("admin_token") else "no --admin-token given"
    if need == "test-clock":
        status = statuses.get("clock")
        if status in (401, 403):
            return f"the target refused GET /admin/clock with HTTP {status} ({why}); time control is unavailable"
        return ("the target offers no time control (GET /admin/clock is not available; "
                "start the server with --test-clock)")
    if need == "revocation":
        status = statuses.get("revocations")
        refused = f" (GET /admin/revocations answered {status}: {why})" if status in (401, 403) else ""
        return ("the runner cannot revoke devices on this target: no admin API with a valid --admin-token"
                f"{refused}, and it writes the store's revocations only for a server it spawned (--spawn)")
    if need == "tokens":
        return "the target does not report entitlement-token support (no \"mode\" in GET /healthz)"
    if need == "rights":
        return (f"the runner cannot change the target's rights to set up the rule under test (GET /admin/rights "
                f"answered {statuses.get('rights')}; {why})")
    if need == "admin":
        return (f"the target's admin API is not available (GET /admin/licenses answered "
                f"{statuses.get('licenses')}; {why})")
    return f"the target lacks {need}"


# ------------------------------------------------------------------ server clock

def server_time(ctx: Context) -> int:
    reply = transport.get(ctx.url("/admin/clock"), headers=ctx.admin_headers())
    if reply.status != 200:
        raise NotApplicable(f"GET /admin/clock answered HTTP {reply.status}")
    return int(json.loads(reply.body)["now"])


def _move(ctx: Context, seconds: int) -> int:
    reply = transport.post(ctx.url("/admin/clock"), json.dumps({"advance": seconds}).encode(),
                           content_type="application/json", headers=ctx.admin_headers())
    if reply.status != 200:
        raise RuntimeError(f"POST /admin/clock answered HTTP {reply.status} {reply.error_code}")
    return int(json.loads(reply.body)["now"])


@contextmanager
def server_clock(ctx: Context) -> Iterator[ClockShift]:
    """Move the server clock inside the block; it is moved back by the same amount afterwards."""
    shift = ClockShift(ctx)
    try:
        yield shift
    finally:
        if shift.total:
            _move(ctx, -shift.total)


class ClockShift:
    """Advances the server clock and the clocks of the devices that follow it."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.total = 0

    def advance(self, seconds: int, *devices) -> int:
        now = _move(self.ctx, seconds)
        self.total += seconds
        for device in devices:
            device.record.clock_offset += seconds
            device.save()
        return now


# ------------------------------------------------------------------ revocations

def admin_get(ctx: Context, path: str) -> tuple[int, Any]:
    """GET an admin API document; (status, parsed JSON or None)."""
    reply = transport.get(ctx.url(path), headers=ctx.admin_headers())
    try:
        return reply.status, json.loads(reply.body)
    except ValueError:
        return reply.status, None


@contextmanager
def revoked(ctx: Context, *, device_id: str | None = None, system_id: int | None = None) -> Iterator[dict]:
    """Revoke a device or a system id on the target for the duration of the block."""
    via = ctx.capabilities.get("revocation_via") or ""
    if via.startswith("admin API"):
        with _revoked_by_admin(ctx, device_id=device_id, system_id=system_id) as how:
            yield how
        return
    if ctx.data_dir is None:
        raise NotApplicable(need_reason("revocation", ctx.capabilities))
    with _revoked_in_store(ctx, device_id=device_id, system_id=system_id) as how:
        yield how


def _target(device_id: str | None, system_id: int | None) -> tuple[str, str, dict]:
    if device_id is not None:
        return "device", device_id.lower(), {"device_id": device_id.lower()}
    return "system_id", str(system_id), {"system_id": system_id}


@contextmanager
def _revoked_by_admin(ctx: Context, *, device_id: str | None, system_id: int | None) -> Iterator[dict]:
    kind, value, body = _target(device_id, system_id)
    _, listing = admin_get(ctx, "/admin/revocations")
    already = any((r.get("kind"), r.get("value")) == (kind, value) for r in (listing or {}).get("revocations", []))
    reply = transport.post(ctx.url("/admin/revocations"), json.dumps({**body, "reason": "drm-conformance"}).encode(),
                           content_type="application/json", headers=ctx.admin_headers())
    if reply.status not in (200, 201):
        raise RuntimeError(f"POST /admin/revocations answered {reply.status} {reply.error_code}")
    try:
        yield {"via": "POST /admin/revocations", "revoked": body, "status": reply.status}
    finally:
        if not already:
            request = urllib.request.Request(ctx.url(f"/admin/revocations/{kind}/{value}"), method="DELETE",
                                             headers=ctx.admin_headers())
            with urllib.request.urlopen(request, timeout=10):
                pass


@contextmanager
def _revoked_in_store(ctx: Context, *, device_id: str | None, system_id: int | None) -> Iterator[dict]:
    """Revoke in the spawned server's SQLite store (the namespace's revocations document), which the
    server re-reads when the store's state generation moves."""
    from license_server.revocations import RevocationList
    from license_server.store_factory import SqliteStores

    assert ctx.data_dir is not None
    stores = SqliteStores(ctx.data_dir)
    try:
        revocations = RevocationList(stores.open(namespace_of_url(ctx.server)))
        before = revocations.document()
        revocations.revoke(device_id=device_id, system_id=system_id)
        how = {"via": "the store's revocations document (re-read by the server on change)",
               "revoked": {k: v for k, v in (("device_id", device_id), ("system_id", system_id)) if v is not None}}
        try:
            yield how
        finally:
            revocations.replace(before)
    finally:
        stores.close()


def namespace_of_url(server: str) -> str:
    """The namespace a base URL names with ``/ns/<name>`` (``default`` otherwise)."""
    path = urllib.parse.urlsplit(server).path.strip("/").split("/")
    return path[1] if len(path) >= 2 and path[0] == "ns" else "default"
