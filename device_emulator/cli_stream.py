"""``device-emulator play --stream --seconds N``: a whole streaming playback with heartbeats (the CLI side)."""

from __future__ import annotations

import sys
from typing import Any

import click

from device_emulator import streaming
from device_emulator.cli_support import EXIT_REFUSED, EXIT_USAGE, emit, fail, not_applicable
from device_emulator.device import Device

STREAM_OPTIONS = (
    click.option("--seconds", type=click.IntRange(0, 10 * 86400), default=None,
                 help="With --stream: play this long, sending heartbeats at the license's renewal delay "
                      "(retried every renewal_retry_interval within renewal_recovery_duration), then end with "
                      "the dialect's release (Widevine RELEASE, PlayReady Secure Stop, FairPlay lease end)."),
    click.option("--end", "end_mode", type=click.Choice(["release", "none"]), default="release", show_default=True,
                 help="With --seconds: how the playback ends; none: stop heartbeating without ending the "
                      "session (a crashed player: the server frees the slot when the lease lapses)."),
    click.option("--resume", is_flag=True,
                 help="With --seconds: continue the playback this device left with --end none (its first "
                      "exchange is a heartbeat: the stream that comes back after a network drop)."),
    click.option("--time-travel", is_flag=True,
                 help="With --seconds: move the device clock (and, with --admin-token, the server's test "
                      "clock) instead of waiting, so hours of playback take milliseconds."),
    click.option("--admin-token", default=None, envvar="DRM_SERVER_ADMIN_TOKEN",
                 help="The server's admin token, for --time-travel and --fail-heartbeats (test servers only) "
                      "[env: DRM_SERVER_ADMIN_TOKEN]."),
    click.option("--fail-heartbeats", type=click.IntRange(0, 1000), default=0,
                 help="Inject this many failures of the next heartbeats through the server's fault injection "
                      "(/admin/faults; needs --admin-token) to test recovery."),
)


def stream_options(command: Any) -> Any:
    for option in reversed(STREAM_OPTIONS):
        command = option(command)
    return command


def run(device: Device, *, content_id: str, server: str, system: str, url: str | None, headers: dict[str, str],
        seconds: int, end_mode: str, resume: bool, time_travel: bool, admin_token: str | None, fail_heartbeats: int,
        as_json: bool) -> None:
    """Play the stream, print its timeline; exit 3 when it was refused or stopped early."""
    if system not in streaming.DRIVERS:
        not_applicable("play --stream --seconds", system,
                       "Clear Key has no renewal exchange: a stream has no heartbeat to send", as_json)
    if fail_heartbeats and not admin_token:
        fail("--fail-heartbeats needs --admin-token", EXIT_USAGE, as_json=as_json)
    driver = streaming.DRIVERS[system](device, server=server, system=system, content_id=content_id, url=url,
                                       headers=headers)
    advance = streaming.time_travel(device, server=server, admin_token=admin_token) if time_travel \
        else streaming.real_time

    def started() -> None:
        if fail_heartbeats:
            streaming.inject_heartbeat_failures(server, system, fail_heartbeats, admin_token or "")

    try:
        timeline, stop = streaming.play_stream(driver, seconds=seconds, advance=advance,
                                               end=end_mode == "release", on_started=started, resume=resume)
    except streaming.TransportError as exc:
        fail(str(exc), as_json=as_json)
    data: dict[str, Any] = {
        "content_id": content_id, "system": system, "license_id": driver.license_id,
        "played": timeline.events[-1]["t"] if timeline.events else 0, "seconds": seconds,
        "heartbeats": timeline.count("heartbeat"), "heartbeat_failures": timeline.count("heartbeat_failed"),
        "result": "stopped" if stop else "completed", "events": timeline.events,
    }
    if stop is not None:
        data["error"] = {"code": stop.code, "message": stop.message}
        emit(data, as_json, f"stream of {content_id} {'refused' if not driver.license_id else 'stopped'}: "
                            f"{stop.code}: {stop.message}")
        sys.exit(EXIT_REFUSED)
    emit(data, as_json, f"streamed {content_id} for {seconds} s: {data['heartbeats']} heartbeats, "
                        f"{data['heartbeat_failures']} failed and retried; {timeline.events[-1]['event']}")
