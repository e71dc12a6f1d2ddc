"""Injectable time. The only module that reads the wall clock.

Core code takes a ``now`` (UNIX seconds, int) or a :class:`Clock`; tests and
``--test-clock`` servers use :class:`ControlledClock` so that a 30-day scenario
runs in milliseconds.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Protocol

_DURATION = re.compile(r"^\s*(-?\d+)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MIN_CLOCK = 0  # 1970-01-01T00:00:00Z
MAX_CLOCK = 221_845_392_000  # 9000-01-01T00:00:00Z: a license ten years later still fits every date type


class ClockRangeError(ValueError):
    """A controlled clock was asked to move outside ``MIN_CLOCK..MAX_CLOCK``."""


class Clock(Protocol):
    def now(self) -> int:
        """Current time in whole UNIX seconds."""


class SystemClock:
    """The real wall clock."""

    def now(self) -> int:
        return int(time.time())


class ControlledClock:
    """A clock that runs with the wall clock plus an offset that tests move.

    With ``frozen=True`` it does not tick at all, which makes unit tests exact.
    """

    def __init__(self, start: int | None = None, *, frozen: bool = False) -> None:
        self._frozen = frozen
        # the wall time with its fraction: two processes (workers, replicas) read the same second at the
        # same instant; truncating the start and the ticks apart put them up to a second apart
        self._base: float = start if start is not None else time.time()
        self._offset = 0
        self._started = time.monotonic()

    def now(self) -> int:
        ticked = 0.0 if self._frozen else time.monotonic() - self._started
        return int(self._base + ticked) + self._offset

    def advance(self, seconds: int) -> int:
        self._check(self.now() + seconds)
        self._offset += seconds
        return self.now()

    def set(self, when: int) -> int:
        """Move to ``when``; outside ``MIN_CLOCK..MAX_CLOCK`` raise :class:`ClockRangeError`, unmoved."""
        self._check(when)
        self._offset += when - self.now()
        return self.now()

    @staticmethod
    def _check(when: int) -> None:
        if not MIN_CLOCK <= when <= MAX_CLOCK:
            raise ClockRangeError(f"the test clock stays between {to_iso(MIN_CLOCK)} and {to_iso(MAX_CLOCK)}")

    def reset(self) -> int:
        """Undo every move: back to the start time plus the time that passed."""
        self._offset = 0
        return self.now()


class OffsetClock:
    """A namespace's test clock: a base clock plus an offset the namespace's ``clock`` document
    holds (:mod:`license_server.namespaces` refreshes it), so every worker and replica agrees."""

    def __init__(self, base: Clock, offset: int = 0) -> None:
        self.base = base
        self.offset = offset

    def now(self) -> int:
        return self.base.now() + self.offset

    def offset_for(self, current: int, change: str, value: int = 0) -> int:
        """The offset after ``advance`` by ``value`` seconds, ``set`` to ``value``, or ``reset``, from the
        ``current`` offset; :class:`ClockRangeError` when the time would leave ``MIN_CLOCK..MAX_CLOCK``."""
        base = self.base.now()
        offset = {"advance": current + value, "set": value - base, "reset": 0}[change]
        ControlledClock._check(base + offset)
        return offset


def monotonic() -> float:
    """Monotonic seconds for measuring durations (benchmarks, latency faults)."""
    return time.monotonic()


def wall_clock_now() -> int:
    """The wall clock, for edges that must persist real time (device offsets)."""
    return int(time.time())


def parse_duration(text: str) -> int:
    """Parse ``90``, ``45s``, ``10m``, ``48h``, ``30d`` or ``2w`` into seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 45s, 10m, 48h, 30d)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def to_iso(ts: int | None) -> str | None:
    """UNIX seconds to an ISO-8601 UTC string (``None`` stays ``None``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def from_iso(text: str) -> int:
    """An ISO-8601 date or datetime (UTC if no zone) to UNIX seconds."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())
