"""Read-only console queries over the store's tables: filtered in SQL, keyset-paginated by rowid.

Nothing here writes. Pages are ``rowid < before ORDER BY rowid DESC LIMIT n``, so
page N costs the same as page 1 with 100,000 licenses; filters use the store's
indexes (device, content, account) or stop at the page size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from license_server.store import Store

LICENSE_FILTERS = ("device_id", "account", "content_id", "state", "system")
PAGE = 50
COUNT_CAP = 1000  # totals above this show as "1000+"


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_before: int | None
    total: int


def _where(filters: dict[str, str | None]) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for name in LICENSE_FILTERS:
        value = filters.get(name)
        if value:
            clauses.append(f"{name} = ?")
            params.append(value)
    return (" AND ".join(clauses) or "1"), params


def licenses(store: Store, filters: dict[str, str | None], *, before: int | None = None, limit: int = PAGE,
             count: bool = True) -> Page:
    where, params = _where(filters)
    page_where = where + (" AND rowid < ?" if before else "")
    rows = store.db.execute(
        f"SELECT rowid, license_id, system, device_id, content_id, kind, state, version, tracks, issued_at, "
        f"updated_at, account FROM licenses WHERE {page_where} ORDER BY rowid DESC LIMIT ?",
        [*params, *([before] if before else []), limit + 1]).fetchall()
    names = ("rowid", "license_id", "system", "device_id", "content_id", "kind", "state", "version", "tracks",
             "issued_at", "updated_at", "account")
    out = [dict(zip(names, row)) for row in rows[:limit]]
    for row in out:
        row["tracks"] = json.loads(row["tracks"])
    total = -1
    if count:  # bounded: an unindexed filter over 100,000 rows must not scan them all for a number
        total = store.db.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM licenses WHERE {where} LIMIT ?)",
                                 [*params, COUNT_CAP + 1]).fetchone()[0]
    return Page(out, out[-1]["rowid"] if len(rows) > limit else None, total)


def activity(store: Store, *, after: int = 0, limit: int = PAGE) -> list[dict[str, Any]]:
    """The newest audit entries (license requests and their outcomes), newest first."""
    rows = store.db.execute(
        "SELECT id, at, system, event, device_id, content_id, license_id, code, message FROM audit "
        "WHERE id > ? ORDER BY id DESC LIMIT ?", (after, limit)).fetchall()
    names = ("id", "at", "system", "event", "device_id", "content_id", "license_id", "code", "message")
    return [dict(zip(names, row)) for row in rows]


def devices(store: Store, *, limit: int = 100) -> list[dict[str, Any]]:
    rows = store.db.execute(
        "SELECT device_id, system, system_id, model, security_level, verification, first_seen, last_seen "
        "FROM devices ORDER BY last_seen DESC LIMIT ?", (limit,)).fetchall()
    names = ("device_id", "system", "system_id", "model", "security_level", "verification", "first_seen", "last_seen")
    return [dict(zip(names, row)) for row in rows]
