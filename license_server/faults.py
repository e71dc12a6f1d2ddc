"""Injected faults, for testing how players handle a misbehaving license server.

Pure bookkeeping (no aiohttp, no clock reads: ``now`` is an argument); the
middleware that applies the faults is :mod:`license_server.handlers.admin_faults`.

A fault targets a *dialect* (the route family: ``widevine``, ``fairplay``,
``playready``, ``clearkey``, ``downloads`` for ``POST /downloads``, ``media``
for presigned media files; ``None`` for all of them) and optionally a content
id, and does one of:

* ``latency``: delay the request by ``latency_ms``, then serve it normally;
* ``error``: answer a stable error code in the dialect's native error shape;
* ``status``: answer that HTTP status (body: the dialect's error shape);
* ``drop``: close the connection without answering.

Every action may also carry ``latency_ms`` (delay first, then fail). A fault
lives for the next ``count`` matching requests, or during a window of the
server clock (``duration`` from when it was added), or until whichever ends
first when both are given. Admin and health routes are never disturbed.

The faults of a namespace live in its ``faults`` state document (:class:`StoredFaults`), so every
worker and replica applies the same plan; a use that spends a count is one ``update_document``
transaction, so two workers never both spend the last count.

When several faults match one request, every matching ``latency`` fault
applies (their delays add up) and the oldest matching ``error``/``status``/
``drop`` fault answers; only the faults that were applied use up their count.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from license_server.admin_models import FAULT_TARGETS, ORIGIN_TARGETS, Fault, FaultSpec
from license_server.dialects import NAMES
from license_server.store_api import FAULTS_DOCUMENT, StateDocuments

__all__ = ["FAULT_TARGETS", "ORIGIN_TARGETS", "FAULTABLE_PREFIXES", "FaultBook", "StoredFaults", "fault_dialect"]
FAULTABLE_PREFIXES: tuple[str, ...] = NAMES + ("media",)  # route-name prefixes (every dialect's and media.*)
DOWNLOADS_ROUTE = "media.downloads"


def fault_dialect(route_name: str | None) -> str | None:
    """The fault target a route belongs to, or ``None`` for routes faults never touch."""
    if not route_name:
        return None
    if route_name == DOWNLOADS_ROUTE:
        return "downloads"
    prefix = route_name.split(".", 1)[0]
    return prefix if prefix in FAULTABLE_PREFIXES else None


@dataclass
class ActiveFault:
    """A configured fault and what is left of it."""

    id: str
    spec: FaultSpec
    created_at: int
    remaining: int | None
    until: int | None
    hits: int = 0

    def live(self, now: int) -> bool:
        return (self.remaining is None or self.remaining > 0) and (self.until is None or now < self.until)

    def matches(self, dialect: str, content_ids: frozenset[str], now: int) -> bool:
        return (
            self.live(now)
            and (self.spec.dialect is None or self.spec.dialect == dialect)
            and (self.spec.content_id is None or self.spec.content_id in content_ids)
        )

    @property
    def terminal(self) -> bool:
        """Does it answer instead of the handler (error, status, drop)?"""
        return self.spec.action != "latency"

    def use(self) -> None:
        self.hits += 1
        if self.remaining is not None:
            self.remaining -= 1

    def dump(self) -> dict[str, Any]:
        return {"id": self.id, "spec": self.spec.model_dump(mode="json"), "created_at": self.created_at,
                "remaining": self.remaining, "until": self.until, "hits": self.hits}

    @classmethod
    def load(cls, doc: dict[str, Any]) -> ActiveFault:
        return cls(id=str(doc["id"]), spec=FaultSpec.model_validate(doc["spec"]), created_at=int(doc["created_at"]),
                   remaining=doc["remaining"], until=doc["until"], hits=int(doc.get("hits", 0)))

    def view(self) -> Fault:
        spec = self.spec
        return Fault(id=self.id, dialect=spec.dialect, content_id=spec.content_id, action=spec.action,
                     latency_ms=spec.latency_ms, error_code=spec.error_code, http_status=spec.http_status,
                     remaining=self.remaining, until=self.until, created_at=self.created_at, hits=self.hits)


@dataclass(frozen=True)
class Disturbance:
    """What to do to one request: wait ``latency_ms``, then let ``answer`` respond (or serve it)."""

    latency_ms: int
    answer: ActiveFault | None
    applied: tuple[str, ...]


@dataclass
class FaultBook:
    """The faults currently configured, in the order they were added."""

    _faults: list[ActiveFault] = field(default_factory=list)
    _next_id: int = 1

    def add(self, spec: FaultSpec, now: int) -> ActiveFault:
        window = spec.window_seconds
        fault = ActiveFault(id=f"f{self._next_id}", spec=spec, created_at=now, remaining=spec.count,
                            until=now + window if window is not None else None)
        self._next_id += 1
        self._faults.append(fault)
        return fault

    def active(self, now: int) -> list[ActiveFault]:
        """Live faults (spent or ended ones are forgotten)."""
        self._faults = [f for f in self._faults if f.live(now)]
        return list(self._faults)

    def remove(self, fault_id: str) -> bool:
        kept = [f for f in self._faults if f.id != fault_id]
        removed = len(kept) != len(self._faults)
        self._faults = kept
        return removed

    def clear(self) -> int:
        count = len(self._faults)
        self._faults = []
        return count

    def __bool__(self) -> bool:
        return bool(self._faults)

    def wants_content(self, dialect: str, now: int) -> bool:
        """Does any live fault for ``dialect`` need the request's content ids to decide?"""
        return any(f.spec.content_id is not None and f.live(now) and f.spec.dialect in (None, dialect)
                   for f in self._faults)

    def take(self, dialect: str, content_ids: frozenset[str], now: int) -> Disturbance | None:
        """Decide (and count) what happens to one request; ``None`` when no fault matches."""
        latency, answer, applied = 0, None, []
        for fault in self.active(now):
            if not fault.matches(dialect, content_ids, now):
                continue
            if fault.terminal:
                if answer is not None:
                    continue
                answer = fault
            fault.use()
            latency += fault.spec.latency_ms or 0
            applied.append(fault.id)
        if not applied:
            return None
        return Disturbance(latency_ms=latency, answer=answer, applied=tuple(applied))


def dump_book(book: FaultBook) -> str:
    return json.dumps({"next_id": book._next_id, "faults": [f.dump() for f in book._faults]})


def load_book(text: str | None) -> FaultBook:
    """The book a ``faults`` document holds (an absent document is an empty book)."""
    if not text:
        return FaultBook()
    doc = json.loads(text)
    return FaultBook([ActiveFault.load(f) for f in doc.get("faults", [])], int(doc.get("next_id", 1)))


class _Unchanged(Exception):
    """Aborts a document update that would change nothing."""


class StoredFaults:
    """A namespace's fault book, kept in its ``faults`` state document.

    Reads use the copy parsed at the request's refresh (:meth:`load`); every change, including a
    request spending a count, re-reads and rewrites the document in one store transaction.
    """

    def __init__(self, documents: StateDocuments) -> None:
        self.documents = documents
        self.book = FaultBook()

    def load(self, text: str | None) -> None:
        self.book = load_book(text)

    def __bool__(self) -> bool:
        return bool(self.book)

    def wants_content(self, dialect: str, now: int) -> bool:
        return self.book.wants_content(dialect, now)

    def active(self, now: int) -> list[ActiveFault]:
        return self.book.active(now)

    def _change(self, edit: Callable[[FaultBook], Any]) -> Any:
        outcome: list[Any] = []

        def change(current: str | None) -> str:
            book = load_book(current)
            result = edit(book)
            if result is None:
                raise _Unchanged
            outcome.append(result)
            return dump_book(book)

        try:
            self.book = load_book(self.documents.update_document(FAULTS_DOCUMENT, change))
        except _Unchanged:
            return None
        return outcome[0]

    def take(self, dialect: str, content_ids: frozenset[str], now: int) -> Disturbance | None:
        """Like :meth:`FaultBook.take`, atomically against the stored book (counts spent once)."""
        if not any(f.matches(dialect, content_ids, now) for f in self.book.active(now)):
            return None  # nothing matches the copy read at this request's refresh: no write
        result: Disturbance | None = self._change(lambda book: book.take(dialect, content_ids, now))
        return result

    def add(self, spec: FaultSpec, now: int) -> ActiveFault:
        fault: ActiveFault = self._change(lambda book: book.add(spec, now))
        return fault

    def remove(self, fault_id: str) -> bool:
        return bool(self._change(lambda book: book.remove(fault_id) or None))

    def clear(self) -> int:
        cleared: int | None = self._change(lambda book: book.clear() or None)
        return cleared or 0
