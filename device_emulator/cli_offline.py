"""``device-emulator`` commands of the license lifecycle: play, status, clock, remove, sync, renew."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from device_emulator import cli_stream, lifecycle
from device_emulator.cli_stream import stream_options
from device_emulator.cli_support import (
    EXIT_REFUSED,
    EXIT_USAGE,
    device_dir_arg,
    dialect_cdm,
    emit,
    entitlement_headers,
    entitlement_options,
    fail,
    json_option,
    load_device,
    not_applicable,
)
from device_emulator.errors import CdmError
from device_emulator.namespaces import namespace_option
from device_emulator.transport import TransportError
from license_server.clock import from_iso, parse_duration, to_iso

license_option = click.option("--license", "license_id", default=None, metavar="ID",
                              help="This license (its license id or key set id, as `status` and `licenses` show) "
                                   "when the device holds several for the title; default: the newest.")
system_option = click.option("--system", type=click.Choice(lifecycle.SYSTEMS), default=None,
                             help="Only the license of this DRM system (when the device holds several for the title).")


@click.command()
@namespace_option
@device_dir_arg
@click.option("--content", "content_id", required=True, help="Content id of a downloaded title.")
@click.option("--offline", is_flag=True,
              help="State that the device is offline. Playback decisions never use the network anyway.")
@click.option("--stream", is_flag=True,
              help="Play online instead: a temporary license from --server, ended with the dialect's "
                   "end-of-playback report (PlayReady Secure Stop).")
@click.option("--server", help="License server base URL (with --stream).")
@click.option("--license-url", help="With --stream: replaces the dialect's default path (query string included).")
@system_option
@license_option
@stream_options
@entitlement_options
@json_option
def play(device_dir: Path, content_id: str, offline: bool, stream: bool, server: str | None,
         license_url: str | None, system: str | None, license_id: str | None, seconds: int | None, end_mode: str,
         resume: bool, time_travel: bool, admin_token: str | None, fail_heartbeats: int, token: str | None,
         region: str | None, as_json: bool) -> None:
    """Decide from the stored license alone whether playback may start (records the first play).

    A downloaded title is decrypted with the keys held by the TEE and decoded;
    the output reports the frames and bytes decoded. With --stream the license
    is a temporary one fetched now from --server.
    """
    device = load_device(device_dir, as_json)
    report = None
    if seconds is not None and not stream:
        fail("--seconds plays a stream: add --stream and --server", EXIT_USAGE, as_json=as_json)
    if stream:
        if offline or not server:
            fail("--stream needs --server and cannot be combined with --offline", EXIT_USAGE, as_json=as_json)
        if seconds is not None:
            return cli_stream.run(device, content_id=content_id, server=server, system=system or "widevine",
                                  url=license_url, headers=entitlement_headers(token, region), seconds=seconds,
                                  end_mode=end_mode, resume=resume, time_travel=time_travel, admin_token=admin_token,
                                  fail_heartbeats=fail_heartbeats, as_json=as_json)
        try:
            decision, report = lifecycle.stream(device, content_id, server=server, system=system or "widevine",
                                                url=license_url, headers=entitlement_headers(token, region))
        except TransportError as exc:
            fail(str(exc), as_json=as_json)
    else:
        decision = lifecycle.play(device, content_id, system=system, license_id=license_id)
    data = decision.as_dict()
    data.pop("expires_at_iso")
    data["offline"] = not stream
    if stream:
        data["end_of_playback_report"] = report
    if decision.decision == "play":
        media = decision.media
        decoded = (f"; decrypted {media['samples_decrypted']} samples ({media['bytes_decrypted']} bytes), "
                   f"decoded {media['frames_decoded']} frames "
                   f"({media['scheme']})" if media else "")
        reported = f"; end of playback reported: {report['status']}" if report else ""
        emit(data, as_json, f"playing {content_id}: {decision.message} (governing clock: {decision.governing_clock})"
             f"{decoded}{reported}")
        return
    emit(data, as_json, f"refused: {decision.reason}: {decision.message}")
    sys.exit(EXIT_REFUSED)


@click.command()
@device_dir_arg
@json_option
def status(device_dir: Path, as_json: bool) -> None:
    """Every stored license with its two clocks and the message a viewer sees."""
    rows = lifecycle.status(load_device(device_dir, as_json))
    lines = [f"{r['content_id']:14} {r.get('system', ''):9} {r['license_id'] or r['key_set_id']}  "
             f"{r['state']:16} {r.get('message', '')}"
             + (f"  [{r['governing_clock']}]" if r.get("governing_clock") else "")
             + (f"  ({r['reason']})" if r.get("reason") else "") for r in rows]
    emit(rows, as_json, "\n".join(lines) or "no stored licenses")


@click.command()
@device_dir_arg
@click.option("--advance", help="Move the device clock forward (or back with a minus), e.g. 20d, 36h, -2d.")
@click.option("--set", "set_to", help="Set the device clock to an ISO date/time (UTC if no zone).")
@click.option("--reset", is_flag=True, help="Back to the real time (offset 0).")
@json_option
def clock(device_dir: Path, advance: str | None, set_to: str | None, reset: bool, as_json: bool) -> None:
    """Show or move the device clock (a persisted offset, for testing)."""
    if sum(x is not None and x is not False for x in (advance, set_to, reset)) > 1:
        fail("give at most one of --advance, --set, --reset", EXIT_USAGE, as_json=as_json)
    device = load_device(device_dir, as_json)
    try:
        if advance is not None:
            device.record.clock_offset += parse_duration(advance)
        elif set_to is not None:
            device.record.clock_offset += from_iso(set_to) - device.now()
        elif reset:
            device.record.clock_offset = 0
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE, as_json=as_json)
    device.save()
    now = device.now()
    emit({"now": now, "iso": to_iso(now), "offset": device.record.clock_offset}, as_json,
         f"device clock: {to_iso(now)} (offset {device.record.clock_offset:+d} s)")


@click.command()
@namespace_option
@device_dir_arg
@click.option("--content", "content_id", required=True, help="Content id of a downloaded title.")
@click.option("--server", help="Send the release now (omit, or add --offline, to keep it pending).")
@click.option("--offline", is_flag=True, help="Do not contact the server; the destruction record waits.")
@system_option
@license_option
@entitlement_options
@json_option
def remove(device_dir: Path, content_id: str, server: str | None, offline: bool, system: str | None,
           license_id: str | None, token: str | None, region: str | None, as_json: bool) -> None:
    """Destroy a downloaded license at once and record its destruction for the server.

    The release goes to the license URL stored with the license (the server that issued it,
    which holds the record); --server says when to send it and fills in a missing URL.
    """
    device = load_device(device_dir, as_json)
    try:
        report = lifecycle.remove(device, content_id, server=None if offline else server, system=system,
                                  headers=entitlement_headers(token, region), license_id=license_id)
    except lifecycle.LifecycleError as exc:
        emit({"error": {"code": exc.code, "message": exc.message}}, as_json, f"refused: {exc.code}: {exc.message}")
        sys.exit(EXIT_REFUSED)
    except TransportError as exc:
        report = None
        click.echo(f"warning: {exc}; the release stays pending until the next sync", err=True)
    data = {"removed": content_id, "release": report.as_dict() if report else "pending"}
    state = "acknowledged" if report and report.released else "pending until the next sync"
    emit(data, as_json, f"removed {content_id}: keys destroyed, release {state}" + _destinations(report))


def _destinations(report: lifecycle.SyncReport | None) -> str:
    """Where the releases went and why (the stored license URL wins over --server)."""
    return "".join(f"\n  release of {d['key_set_id']} sent to {d['url']} ({d['why']})"
                   for d in (report.release_destinations if report else []))


@click.command()
@namespace_option
@device_dir_arg
@click.option("--server", required=True, help="License server base URL (time, renewals; releases go to the "
              "license URL stored with each license, and here only if none was stored).")
@entitlement_options
@json_option
def sync(device_dir: Path, server: str, token: str | None, region: str | None, as_json: bool) -> None:
    """Re-sync trusted time, send pending destruction reports (until acknowledged) and due renewals."""
    try:
        report = lifecycle.sync(load_device(device_dir, as_json), server=server,
                                headers=entitlement_headers(token, region))
    except TransportError as exc:
        fail(str(exc), as_json=as_json)
    except lifecycle.LifecycleError as exc:
        fail(f"{exc.code}: {exc.message}", as_json=as_json, error_code=exc.code)
    emit(report.as_dict(), as_json,
         f"released {len(report.released)}, pending {len(report.release_pending)}, renewed {len(report.renewed)}, "
         f"playback reports {len(report.playback_reports)} (pending {len(report.playback_reports_pending)}), "
         f"time {to_iso(report.server_time)}" + _destinations(report))
    if report.release_pending or report.playback_reports_pending:
        sys.exit(EXIT_REFUSED)


@click.command()
@namespace_option
@device_dir_arg
@click.option("--content", "content_id", required=True, help="Content id of a downloaded title.")
@click.option("--server", required=True, help="License server base URL.")
@system_option
@license_option
@entitlement_options
@json_option
def renew(device_dir: Path, content_id: str, server: str, system: str | None, license_id: str | None,
          token: str | None, region: str | None, as_json: bool) -> None:
    """Renew a stored license (applied only if the server's version is higher; Widevine-style only)."""
    if system is not None and not dialect_cdm(system).renewable:
        not_applicable("renew", system, f"{system} licenses have no renewal; acquire a new license", as_json)
    try:
        result = lifecycle.renew(load_device(device_dir, as_json), content_id, server=server, system=system,
                                 headers=entitlement_headers(token, region), license_id=license_id)
    except TransportError as exc:
        fail(str(exc), as_json=as_json)
    except (lifecycle.LifecycleError, CdmError) as exc:
        emit({"applied": False, "error": {"code": exc.code, "message": exc.message}}, as_json,
             f"refused: {exc.code}: {exc.message}")
        sys.exit(EXIT_REFUSED)
    text = (f"renewed to version {result['version']}" if result["applied"]
            else f"ignored a stale renewal (version {result['offered_version']} <= {result['version']})")
    emit(result, as_json, text)


def register(group: click.Group) -> None:
    for command in (play, status, clock, remove, sync, renew):
        group.add_command(command)
