"""Read-only console queries, through the store's read methods: filtered in SQL, keyset-paginated by rowid.

Nothing here writes. Pages are ``rowid < before ORDER BY rowid DESC LIMIT n``, so
page N costs the same as page 1 with 100,000 licenses; filters use the store's
indexes (device, content, account) or stop at the page size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from license_server.store_sql import SqlStore as Store

LICENSE_FILTERS = ("device_id", "account", "content_id", "state", "system")
PAGE = 50
COUNT_CAP = 1000  # totals above this show as "1000+"


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_before: int | None
    total: int


def licenses(store: Store, filters: dict[str, str | None], *, before: int | None = None, limit: int = PAGE,
             count: bool = True) -> Page:
    """One page of license summaries and (bounded) how many match in all; ``total`` is -1 when not counted."""
    rows = store.license_summaries(filters, before=before, limit=limit + 1)
    out = rows[:limit]
    # bounded: an unindexed filter over 100,000 rows must not scan them all for a number
    total = store.count_licenses(filters, cap=COUNT_CAP + 1) if count else -1
    return Page(out, out[-1]["rowid"] if len(rows) > limit else None, total)


def activity(store: Store, *, after: int = 0, limit: int = PAGE) -> list[dict[str, Any]]:
    """The newest audit entries (license requests and their outcomes), newest first."""
    return store.audit_since(after, limit=limit)


def devices(store: Store, *, limit: int = 100) -> list[dict[str, Any]]:
    """The most recently seen devices first."""
    return store.devices(recent=limit)
