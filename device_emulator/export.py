"""``device-emulator export DEVICE_DIR --format FORMAT --out FILE``: a device for third-party clients.

Formats live in :data:`FORMATS` (name -> writer). ``prd`` writes a pyplayready
device file, version 2 (all integers big-endian)::

    "PRD" | u8 version (2) | u32 chain length | BCert chain | encryption key (96) | signing key (96)

where a key is its 32-byte private value followed by its 64-byte public X|Y.
No group (model) key is written: the model key stays with the emulated PKI.
Exporting an L1 device takes its keys out of the emulated TEE: the command
says so on stderr (the device itself is unchanged).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from device_emulator.cli_support import EXIT_ERROR, device_dir_arg, fail, load_device
from device_emulator.device import Device
from device_emulator.tee import TeeError
from license_server.core.model import SecurityLevel
from license_server.crypto import ecc

PRD_VERSION = 2


@dataclass(frozen=True)
class Exported:
    data: bytes
    summary: str


def _prd_key(private_pem: bytes) -> bytes:
    return ecc.private_scalar(private_pem).to_bytes(32, "big") + ecc.ec_public_point(private_pem)[1:]


def export_prd(device: Device) -> Exported:
    """The device's PlayReady identity as a pyplayready ``.prd`` (v2)."""
    from device_emulator.cdm.playready_identity import open_identity

    identity = open_identity(device)
    signing, encryption = identity.holder.export_private_keys()
    data = (b"PRD" + bytes([PRD_VERSION]) + struct.pack(">I", len(identity.chain)) + identity.chain
            + _prd_key(encryption) + _prd_key(signing))
    return Exported(data, f"PlayReady device {device.device_id} ({identity.model}, SL{identity.security_level})")


FORMATS: dict[str, Callable[[Device], Exported]] = {"prd": export_prd}


def register(main: click.Group) -> None:
    @main.command("export")
    @device_dir_arg
    @click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), required=True,
                  help="prd: a pyplayready device file.")
    @click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="File to write.")
    def export(device_dir: Path, fmt: str, out: Path) -> None:
        """Write the device's identity and private keys in a third-party client's format (TEST ONLY)."""
        device = load_device(device_dir)
        if device.level is SecurityLevel.L1:
            click.echo("warning: this is an L1 device; exporting copies its private keys out of the emulated TEE "
                       "(anything holding the file can act as this device)", err=True)
        try:
            exported = FORMATS[fmt](device)
        except TeeError as exc:
            fail(f"{exc.code}: {exc.message}", EXIT_ERROR)
        out.write_bytes(exported.data)
        click.echo(f"wrote {out} ({fmt}): {exported.summary}")
