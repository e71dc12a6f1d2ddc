"""Device files for other tools: ``device-emulator export DEVICE_DIR --format F --out FILE``.

One :class:`ExportFormat` per target format in :data:`FORMATS` (``wvd``,
``prd``); a new format is one function and one entry. Every exporter returns
the bytes and the warnings the user must see: exporting never fails or weakens
anything silently.

``wvd`` is pywidevine's device file, version 2 (all integers big-endian)::

    "WVD"  version=2 (u8)  device type (u8: 1 CHROME, 2 ANDROID)  security level (u8: 1 or 3)
    flags (u8, 0)  private key length (u16)  private key (PKCS#1 DER)
    client id length (u16)  client id (serialized ClientIdentification)

The client id is the one this device sends, without our attestation evidence
(evidence is made per request inside the TEE; a stock CDM has none). A server
therefore sees the exported device as an unverified platform.

``prd`` is pyplayready's device file, version 2 (all integers big-endian)::

    "PRD" | u8 version (2) | u32 chain length | BCert chain | encryption key (96) | signing key (96)

where a key is its 32-byte private value followed by its 64-byte public X|Y.
No group (model) key is written: the model key stays with the emulated PKI.
Like a ``.wvd``, a stock client sends no evidence: served as an unverified platform.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from device_emulator.cdm.widevine import WidevineCdm
from device_emulator.device import Device
from device_emulator.errors import DeviceEmulatorError, TeeError
from license_server.core.model import SecurityLevel
from license_server.crypto import ecc
from license_server.protocols.playready import certificates as bcert
from license_server.protocols.widevine import license_protocol_pb2 as pb

WVD_MAGIC = b"WVD"
WVD_VERSION = 2
PRD_MAGIC = b"PRD"
PRD_VERSION = 2
WVD_DEVICE_TYPES = {"CHROME": 1, "ANDROID": 2}
_WVD_TYPE_OF_DEVICE = {"laptop": "CHROME", "desktop": "CHROME"}  # everything else is an Android phone/tablet

L1_WARNING = ("warning: this is an L1 device: the export takes its private key out of the emulated TEE. "
              "Whoever holds {out} can act as this device (a software CDM); keep it out of shared places.")
FLAGS_WARNING = ("warning: the device's {flags} state is not carried by the export: a stock CDM sends no "
                 "attestation evidence, so a server serves it as an unverified platform (software keys only).")


class ExportError(DeviceEmulatorError):
    """The device cannot be exported in that format (the message says what to do)."""


@dataclass(frozen=True)
class Exported:
    data: bytes
    summary: dict[str, object]
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class ExportFormat:
    name: str
    description: str
    export: Callable[[Device], Exported]


def _leaf_system_id(device: Device) -> int:
    signed = pb.SignedDrmCertificate.FromString(device.certificate_chain)
    return pb.DrmCertificate.FromString(signed.drm_certificate).system_id


def _state_warnings(device: Device) -> list[str]:
    flags = device.record.flags
    named = [name for name, on in (("rooted", flags.rooted), ("bootloader-unlocked", flags.bootloader_unlocked),
                                   ("tampered-app", flags.tampered_app)) if on]
    return [FLAGS_WARNING.format(flags="/".join(named))] if named else []


def export_wvd(device: Device) -> Exported:
    """The device as a pywidevine ``.wvd`` (version 2)."""
    system_id = _leaf_system_id(device)
    if not system_id:
        raise ExportError(
            f"device {device.device_id} was created before device certificates carried their system_id, which "
            "a .wvd needs; re-create it with `device-emulator create` (it keeps working with the server as it is)")
    key = device.tee.export_device_key()
    client_id = WidevineCdm(device).client_identification().SerializeToString()
    device_type = _WVD_TYPE_OF_DEVICE.get(device.record.device_type, "ANDROID")
    level = 1 if device.level is SecurityLevel.L1 else 3
    data = (WVD_MAGIC + struct.pack(">BBBB", WVD_VERSION, WVD_DEVICE_TYPES[device_type], level, 0)
            + struct.pack(">H", len(key)) + key + struct.pack(">H", len(client_id)) + client_id)
    warnings = ([L1_WARNING] if device.level is SecurityLevel.L1 else []) + _state_warnings(device)
    summary: dict[str, object] = {"format": "wvd", "version": WVD_VERSION, "device_type": device_type,
                                  "security_level": level, "system_id": system_id, "device_id": device.device_id}
    return Exported(data, summary, tuple(warnings))


def _prd_key(private_pem: bytes) -> bytes:
    return ecc.private_scalar(private_pem).to_bytes(32, "big") + ecc.ec_public_point(private_pem)[1:]


def export_prd(device: Device) -> Exported:
    """The device's PlayReady identity as a pyplayready ``.prd`` (version 2)."""
    from device_emulator.cdm.playready_identity import open_identity  # the PlayReady side loads only when asked

    try:
        identity = open_identity(device)
        signing, encryption = identity.holder.export_private_keys()
    except TeeError as exc:
        raise ExportError(f"{exc.code}: {exc.message}") from exc
    data = (PRD_MAGIC + bytes([PRD_VERSION]) + struct.pack(">I", len(identity.chain)) + identity.chain
            + _prd_key(encryption) + _prd_key(signing))
    warnings = ([L1_WARNING] if device.level is SecurityLevel.L1 else []) + _state_warnings(device)
    model_number = bcert.decode_chain(identity.chain)[0].model_number  # the leaf names its model's system id
    summary: dict[str, object] = {
        "format": "prd", "version": PRD_VERSION, "device_type": device.record.device_type,
        "security_level": identity.security_level, "system_id": int(model_number) if model_number.isdigit() else 0,
        "model": identity.model, "device_id": device.device_id}
    return Exported(data, summary, tuple(warnings))


FORMATS: dict[str, ExportFormat] = {
    "wvd": ExportFormat("wvd", "pywidevine device file (.wvd v2): device type, security level, private key, "
                               "client id", export_wvd),
    "prd": ExportFormat("prd", "pyplayready device file (.prd v2): BCert chain, encryption and signing keys",
                        export_prd),
}


def export_device(device: Device, format_name: str) -> Exported:
    try:
        chosen = FORMATS[format_name]
    except KeyError:
        raise ExportError(f"unknown export format {format_name!r}; known: {', '.join(FORMATS)}") from None
    return chosen.export(device)
