"""Commands for other tools: ``export`` (a device file, see :mod:`device_emulator.export`) and ``pssh``."""

from __future__ import annotations

import base64
from pathlib import Path

import click

from device_emulator.cli_support import EXIT_USAGE, device_dir_arg, emit, fail, json_option, load_device
from device_emulator.export import FORMATS, ExportError, export_device
from license_server.keyring import KeyringError, default_keys_dir, load_keyring
from license_server.protocols.widevine import codec


@click.command("export")
@device_dir_arg
@click.option("--format", "format_name", type=click.Choice(sorted(FORMATS)), required=True,
              help="; ".join(f"{f.name}: {f.description}" for f in FORMATS.values()))
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="File to write.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@json_option
def export(device_dir: Path, format_name: str, out: Path, force: bool, as_json: bool) -> None:
    """Export the device for another tool (its private key goes into the file: test devices only)."""
    device = load_device(device_dir)
    if out.exists() and not force:
        fail(f"{out} exists; pass --force to overwrite it", EXIT_USAGE)
    try:
        exported = export_device(device, format_name)
    except ExportError as exc:
        fail(str(exc), EXIT_USAGE)
    for warning in exported.warnings:
        click.echo(warning.format(out=out), err=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(exported.data)
    out.chmod(0o600)
    summary = {**exported.summary, "out": str(out), "bytes": len(exported.data)}
    emit(summary, as_json, f"wrote {out} ({format_name} v{summary.get('version', '?')}, {summary.get('device_type')}, "
                           f"security level {summary.get('security_level')}, system id {summary.get('system_id')}, "
                           f"{len(exported.data)} bytes)")


@click.command("pssh")
@click.option("--content", "content_id", required=True, help="Content id from the catalog, e.g. demo-movie.")
@click.option("--keys", "keys_dir", type=click.Path(path_type=Path), help="keys/ directory holding the catalog.")
@click.option("--no-kids", is_flag=True, help="Name the content id only (the server then sends every track's key).")
@click.option("--hex", "as_hex", is_flag=True, help="Print hex instead of base64.")
def pssh(content_id: str, keys_dir: Path | None, no_kids: bool, as_hex: bool) -> None:
    """Print a Widevine PSSH box (v0) for a catalog title: content id and the title's key ids."""
    try:
        catalog = load_keyring(keys_dir or default_keys_dir()).catalog
    except KeyringError as exc:
        fail(str(exc), EXIT_USAGE)
    title = catalog.title(content_id)
    if title is None:
        fail(f"content {content_id!r} is not in the catalog", EXIT_USAGE)
    kids = () if no_kids else tuple(track.kid for track in title.tracks)
    box = codec.pssh_box(content_id, kids)
    click.echo(box.hex() if as_hex else base64.b64encode(box).decode())


def register(main: click.Group) -> None:
    main.add_command(export)
    main.add_command(pssh)
