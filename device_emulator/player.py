"""Offline playback decisions from a stored license alone: the two clocks.

Pure: the verified policy, the times and ``now`` are arguments. The storage
(rental) window runs from the license start; the playback window from the
first play (plus the play-start grace period); the license duration from the
license start. The earliest deadline that applies wins and names the governing
clock. Soft enforcement only lets a playback that already started run on; it
never lets a new one start, so it does not change these decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from license_server.clock import to_iso

MINUTE, HOUR, DAY = 60, 3600, 86400


@dataclass(frozen=True)
class PlaybackDecision:
    decision: str  # play | refused
    reason: str | None  # stable reason code when refused
    expires_at: int | None
    governing_clock: str | None  # storage | playback | license
    message: str
    key_statuses: dict[str, str] = field(default_factory=dict)
    first_played_at: int | None = None
    media: dict[str, Any] | None = None  # what offline playback decrypted and decoded, if a download exists
    license_id: str | None = None  # the stored license decided on (offline play)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["expires_at_iso"] = to_iso(self.expires_at)
        return data


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def remaining_text(seconds: int) -> str:
    """Whole units, rounded down: days from 48 hours up, then hours, then minutes."""
    if seconds > 2 * DAY:
        return _plural(seconds // DAY, "day")
    if seconds >= HOUR:
        return _plural(seconds // HOUR, "hour")
    if seconds >= MINUTE:
        return _plural(seconds // MINUTE, "minute")
    return "less than a minute"


def viewer_message(seconds_left: int, *, played: bool) -> str:
    """"Available for 29 more days" before first play; "Expires in 47 hours" after."""
    if played:
        return f"Expires in {remaining_text(seconds_left)}"
    text = remaining_text(seconds_left)
    if text.startswith("less"):
        return "Available for less than a minute"
    return f"Available for {text.replace(' ', ' more ', 1)}"


# A device clock may run a little behind the server's: a license that starts up to this
# many seconds in the device's future is usable at once (an explicit begin date is not).
CLOCK_SKEW_TOLERANCE = 60


def deadlines(policy: dict[str, Any], license_start: int, first_played_at: int | None) -> dict[str, int]:
    """Every deadline that applies, by clock name."""
    found = {}
    if policy.get("rental_duration"):
        found["storage"] = license_start + int(policy["rental_duration"])
    if policy.get("license_duration"):
        found["license"] = license_start + int(policy["license_duration"])
    if first_played_at is not None and policy.get("playback_duration"):
        grace = int(policy.get("play_start_grace_period", 0))
        found["playback"] = first_played_at + grace + int(policy["playback_duration"])
    return found


def decide(
    policy: dict[str, Any],
    *,
    license_start: int,
    first_played_at: int | None,
    now: int,
    kids: list[str],
    restricted_kids: frozenset[str] = frozenset(),
    not_before: int | None = None,
) -> PlaybackDecision:
    """May playback start now? ``first_played_at`` is None until the first play.

    ``not_before`` is a begin date some dialects carry apart from the license
    start (the start of the storage window).
    """

    def refused(reason: str, status: str, message: str, expires_at: int | None = None,
                clock: str | None = None) -> PlaybackDecision:
        return PlaybackDecision("refused", reason, expires_at, clock, message, {k: status for k in kids},
                                first_played_at)

    if not policy.get("can_play", True):
        return refused("PLAYBACK_NOT_ALLOWED", "internal-error", "This license does not allow playback")
    if now + CLOCK_SKEW_TOLERANCE < license_start or now < (not_before or 0):
        return refused("NOT_YET_VALID", "usable-in-future", "Not available yet")
    found = deadlines(policy, license_start, first_played_at if first_played_at is not None else None)
    clock: str | None = None
    expires_at: int | None = None
    if found:
        clock, expires_at = min(found.items(), key=lambda item: (item[1], item[0] != "playback"))
        if now >= expires_at:
            reason = {"storage": "STORAGE_WINDOW_EXPIRED", "playback": "PLAYBACK_WINDOW_EXPIRED",
                      "license": "LICENSE_EXPIRED"}[clock]
            return refused(reason, "expired", "This download has expired", expires_at, clock)
    statuses = {k: ("output-restricted" if k in restricted_kids else "usable") for k in kids}
    if all(status == "output-restricted" for status in statuses.values()):
        return PlaybackDecision("refused", "OUTPUT_RESTRICTED", expires_at, clock,
                                "Cannot play on this display (output protection)", statuses, first_played_at)
    played = first_played_at is not None
    message = viewer_message(expires_at - now, played=played) if expires_at is not None else "No expiry"
    return PlaybackDecision("play", None, expires_at, clock, message, statuses, first_played_at)
