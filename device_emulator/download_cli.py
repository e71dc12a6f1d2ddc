"""Presentation of ``device-emulator download``: storage estimate, progress bar, exit codes.

Exit codes follow the rest of the CLI: 0 complete, 3 refused (license or
download authorization, with the stable code), 1 anything else (network,
storage, size mismatch, interruption: run again to resume).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from device_emulator.device import Device
from device_emulator.downloader import DownloadError, DownloadRefused, download
from device_emulator.transport import TransportError
from license_server.protocols.downloads import DownloadAnswer

EXIT_OK, EXIT_ERROR, EXIT_REFUSED = 0, 1, 3


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def estimate_line(answer: DownloadAnswer, remaining: int) -> str:
    seconds = max((r.duration for r in answer.renditions), default=0)
    left = "" if remaining == answer.estimated_bytes else f", {human_bytes(remaining)} left to fetch"
    return (f"storage estimate: {human_bytes(answer.estimated_bytes)} for {seconds:.0f} s of {answer.content_id} "
            f"({answer.quality}, {answer.scheme}; about {human_bytes(answer.bytes_per_hour)} per hour of video)"
            f"{left}")


def run_download(device: Device, *, server: str, content_id: str, quality: str, scheme: str, tier: str | None,
                 account: str | None, interrupt_after: int | None, as_json: bool,
                 headers: dict[str, str] | None = None, system: str = "widevine",
                 license_url: str | None = None, new_license: bool = False) -> None:
    stderr = sys.stderr
    show_bar = not as_json and stderr.isatty()
    bar: Any = None

    def on_plan(answer: DownloadAnswer, remaining: int) -> None:
        nonlocal bar
        click.echo(estimate_line(answer, remaining), err=as_json)
        if show_bar and remaining > 0:
            bar = click.progressbar(length=remaining, label="downloading", file=stderr, show_pos=False,
                                    show_percent=True, show_eta=True)
            bar.__enter__()

    def on_progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    try:
        result = download(device, server=server, content_id=content_id, quality=quality, scheme=scheme,
                          account=account, tier=tier, on_plan=on_plan, on_progress=on_progress,
                          interrupt_after=interrupt_after, headers=headers, system=system,
                          license_url=license_url, new_license=new_license)
    except DownloadRefused as exc:
        _finish_bar(bar)
        _report({"status": "refused", "error": {"code": exc.code, "message": exc.message}}, as_json,
                f"refused: {exc.code}: {exc.message}")
        sys.exit(EXIT_REFUSED)
    except (DownloadError, TransportError, OSError) as exc:
        _finish_bar(bar)
        _report({"status": "failed", "error": {"code": "DOWNLOAD_FAILED", "message": str(exc)}}, as_json,
                f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    _finish_bar(bar)
    data = result.as_dict()
    resumed = f", resumed {len(result.resumed_files)} partial file(s)" if result.resumed_files else ""
    _report(data, as_json,
            f"downloaded {content_id} ({quality}, {scheme}): {result.files} files, "
            f"{human_bytes(result.estimated_bytes)} in {result.directory} "
            f"(fetched {human_bytes(result.fetched_bytes)}, {human_bytes(result.present_bytes)} already present"
            f"{resumed}); license {result.key_set_id}{' (reused)' if result.license_reused else ''}")


def _finish_bar(bar: Any) -> None:
    if bar is not None:
        bar.__exit__(None, None, None)


def _report(data: dict[str, Any], as_json: bool, text: str, *, err: bool = False) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(text, err=err)
