"""Console pages: server-rendered HTML fragments under ``/admin/console/`` (so the admin guard,
bearer token and loopback rules, covers them), fetched by the shell's JavaScript."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from license_server.clock import to_iso
from license_server.console import queries
from license_server.console.explanations import explain
from license_server.core import lifecycle
from license_server.dialects import NAMES
from license_server.errors import ErrorCode
from license_server.http import SETTINGS
from license_server.inspect.values import plain
from license_server.namespaces import namespace_of

PREFIX = "/admin/console"
STATES = [state.value for state in lifecycle.State]


def _activity_rows(request: web.Request, after: int) -> list[dict[str, Any]]:
    rows = queries.activity(namespace_of(request).store, after=after)
    for row in rows:
        row["iso"] = to_iso(row["at"])
        if row["code"]:
            row["explanation"], row["fix"] = explain(row["code"], row["message"])
    return rows


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 19 else 0


@aiohttp_jinja2.template("activity.html")
async def activity(request: web.Request) -> dict[str, Any]:
    rows = _activity_rows(request, 0)
    return {"rows": rows, "after": rows[0]["id"] if rows else 0}


@aiohttp_jinja2.template("activity_rows.html")
async def activity_rows(request: web.Request) -> dict[str, Any]:
    return {"rows": _activity_rows(request, _int(request.query.get("after")))}


@aiohttp_jinja2.template("licenses.html")
async def licenses(request: web.Request) -> dict[str, Any]:
    filters = {name: (request.query.get(name) or "").strip()[:128] or None for name in queries.LICENSE_FILTERS}
    page = queries.licenses(namespace_of(request).store, filters, before=_int(request.query.get("before")) or None)
    for row in page.rows:
        row["iso"] = to_iso(row["issued_at"])
    query = "&".join(f"{k}={v}" for k, v in filters.items() if v)
    return {"page": page, "filters": filters, "states": STATES, "dialects": NAMES, "query": query,
            "cap": queries.COUNT_CAP}


def clock_bar(label: str, start: int | None, end: int | None, now: int, pending: str = "") -> dict[str, Any]:
    """One timeline bar: elapsed share and the remaining time in words."""
    if start is None or end is None:
        return {"label": label, "start": None, "end": None, "percent": 0, "remaining": pending or "no limit"}
    span = max(1, end - start)
    percent = min(100.0, max(0.0, 100.0 * (now - start) / span))
    left = end - now
    return {"label": label, "start": to_iso(start), "end": to_iso(end), "percent": round(percent, 1),
            "remaining": "ended" if left <= 0 else duration_words(left)}


def duration_words(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes and not days else ""]
    return " ".join(p for p in parts if p) or f"{seconds}s"


@aiohttp_jinja2.template("license.html")
async def license_page(request: web.Request) -> dict[str, Any]:
    store, now = namespace_of(request).store, namespace_of(request).clock.now()
    record = store.license(request.match_info["license_id"])
    if record is None:
        raise web.HTTPNotFound()
    policy = record.policy
    license_end = record.deadline()
    playback = policy.playback_duration
    played = record.first_used_at
    clocks = [
        clock_bar("License (storage) clock", record.license_start, license_end, now),
        clock_bar("Playback clock", played, played + playback if played and playback else None, now,
                  pending=f"{duration_words(playback)} from the first play (not played yet)" if playback else ""),
    ]
    audit = store.audit_trail(license_id=record.license_id, limit=200)
    for entry in audit:
        entry["iso"] = to_iso(entry["at"])
    state = lifecycle.current_state(lifecycle.State(record.state), policy, record.license_start, now).value
    return {"license": record.public(), "state": state, "clocks": clocks, "audit": audit, "now": to_iso(now),
            "renewals": [e for e in audit if e["event"] == "renewal"],
            "release": next((e for e in audit if e["event"] == "release"), None),
            "released_at": to_iso(record.released_at)}


@aiohttp_jinja2.template("devices.html")
async def devices(request: web.Request) -> dict[str, Any]:
    revoked = namespace_of(request).service.revocations.current()
    rows = queries.devices(namespace_of(request).store)
    for row in rows:
        row["revoked"] = row["device_id"] in revoked.devices or row["system_id"] in revoked.system_ids
        row["revoked_device"] = row["device_id"] in revoked.devices
        row["last_seen_iso"] = to_iso(row["last_seen"])
    return {"devices": rows, "revoked_models": sorted(revoked.system_ids)}


@aiohttp_jinja2.template("streams.html")
async def streams(request: web.Request) -> dict[str, Any]:
    namespace = namespace_of(request)
    now = namespace.clock.now()
    sessions = [s.public(now) for s in namespace.store.streams(now=now)]
    return {"sessions": sessions, "count": len(sessions)}


@aiohttp_jinja2.template("clock.html")
async def clock(request: web.Request) -> dict[str, Any]:
    namespace = namespace_of(request)
    now = namespace.clock.now()
    faults = [plain(f) for f in namespace.faults.active(now)]
    controlled = request.app[SETTINGS].test_clock
    return {"now": now, "iso": to_iso(now), "controlled": controlled,
            "faults": faults, "dialects": NAMES, "codes": [c.value for c in ErrorCode]}


def reports_dir(request: web.Request) -> Path | None:
    value = getattr(request.app[SETTINGS], "reports_dir", None)
    return Path(value) if value else None


def report_files(base: Path) -> list[Path]:
    found = [p for p in base.rglob("*") if p.is_file() and p.suffix in (".html", ".json", ".xml")]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)[:200]


@aiohttp_jinja2.template("conformance.html")
async def conformance(request: web.Request) -> dict[str, Any]:
    base = reports_dir(request)
    files = report_files(base) if base and base.is_dir() else []
    return {"base": base, "files": [{"name": str(p.relative_to(base)), "size": p.stat().st_size,
                                     "iso": to_iso(int(p.stat().st_mtime))} for p in files] if base else []}


@aiohttp_jinja2.template("report.html")
async def report(request: web.Request) -> dict[str, Any]:
    base = reports_dir(request)
    name = request.query.get("name", "")
    if base is None or not name:
        raise web.HTTPNotFound()
    wanted = (base / name).resolve()
    if not wanted.is_relative_to(base.resolve()) or wanted not in {p.resolve() for p in report_files(base)}:
        raise web.HTTPNotFound()
    return {"name": name, "html": wanted.suffix == ".html",
            "text": wanted.read_text(encoding="utf-8", errors="replace")}


@aiohttp_jinja2.template("inspector.html")
async def inspector(request: web.Request) -> dict[str, Any]:
    return {}


def setup(app: web.Application) -> None:
    routes = [("activity", activity), ("activity/rows", activity_rows), ("licenses", licenses),
              ("licenses/{license_id}", license_page), ("devices", devices), ("streams", streams), ("clock", clock),
              ("conformance", conformance), ("conformance/report", report), ("inspector", inspector)]
    for path, handler in routes:
        route_name = "console." + path.replace("/", ".").replace("{", "").replace("}", "")
        app.router.add_get(f"{PREFIX}/{path}", handler, name=route_name)
