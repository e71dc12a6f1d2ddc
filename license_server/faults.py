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

When several faults match one request, every matching ``latency`` fault
applies (their delays add up) and the oldest matching ``error``/``status``/
``drop`` fault answers; only the faults that were applied use up their count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from license_server.admin_models import FAULT_TARGETS, ORIGIN_TARGETS, Fault, FaultSpec
from license_server.dialects import NAMES

__all__ = ["FAULT_TARGETS", "ORIGIN_TARGETS", "FAULTABLE_PREFIXES", "FaultBook", "fault_dialect"]
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
