"""The freshness check's words: which clock is ahead of which, by how much, and what to do."""

from __future__ import annotations

SYNC_HINT = ("if a clock was moved (the server's --test-clock /admin/clock, or the device's clock offset), "
             "run `device-emulator sync DEVICE_DIR --server URL` to align the device with the server")


def _human(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds} s"


def skew_message(what: str, request_time: int, server_now: int, window: int) -> str:
    """Why a request outside the freshness window is refused, with the sign the right way round."""
    delta = request_time - server_now
    side = "ahead of" if delta > 0 else "behind"
    return (f"the device clock ({what}) is {_human(abs(delta))} ({abs(delta)} s) {side} the server clock, "
            f"outside the freshness window of ±{window} s; {SYNC_HINT}")
