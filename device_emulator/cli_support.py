"""Helpers shared by the ``device-emulator`` command modules: exit codes, output, loading."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from device_emulator.device import Device, DeviceError
from license_server import dialects

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
device_dir_arg = click.argument("device_dir", type=click.Path(path_type=Path, file_okay=False))
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def fail(message: str, code: int = EXIT_ERROR, *, as_json: bool = False, error_code: str | None = None) -> NoReturn:
    """Exit with ``code``: one text line on stderr, or with ``as_json`` a JSON error on stdout.

    ``error_code`` defaults to TRANSPORT_ERROR (exit 1) or USAGE_ERROR (exit 2).
    """
    if as_json:
        name = error_code or ("USAGE_ERROR" if code == EXIT_USAGE else "TRANSPORT_ERROR")
        emit({"error": {"code": name, "message": message}}, True, "")
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


def emit(data: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True) if as_json else text)


def load_device(device_dir: Path, as_json: bool = False) -> Device:
    try:
        return Device.load(device_dir)
    except DeviceError as exc:
        fail(str(exc), EXIT_USAGE, as_json=as_json)


def dialect_cdm(system: str) -> Any:
    """The CDM class of a dialect of the registry (its ``device_identity``, ``renewable``)."""
    return dialects.dialect(system).load("device_cdm")


def not_applicable(command: str, system: str, reason: str, as_json: bool) -> NoReturn:
    """A command that cannot apply to a dialect: a usage error (exit 2), in JSON with ``--json``."""
    message = f"{command} does not apply to {system}: {reason}"
    if as_json:
        emit({"system": system, "error": {"code": "NOT_APPLICABLE", "message": message}}, True, "")
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def entitlement_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--token`` and ``--region``: sent as X-DRM-Token / X-DRM-Region, the way a player's
    license request filter adds them (the device never interprets the token)."""
    command = click.option("--region", default=None,
                           help="The viewer's region (ISO 3166 alpha-2), sent as X-DRM-Region.")(command)
    return click.option("--token", default=None, envvar="DRM_DEVICE_TOKEN",
                        help="Entitlement token from the operator's backend, sent as X-DRM-Token "
                             "[env: DRM_DEVICE_TOKEN].")(command)


def entitlement_headers(token: str | None, region: str | None) -> dict[str, str]:
    headers = {}
    if token:
        headers["X-DRM-Token"] = token.strip()
    if region:
        headers["X-DRM-Region"] = region.strip()
    return headers
