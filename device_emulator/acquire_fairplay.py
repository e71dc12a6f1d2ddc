"""FairPlay-style exchanges beyond the common acquisition: SPC transport shapes and secure invalidation.

Acquisition itself is :func:`device_emulator.acquire.acquire` with the
FairPlay CDM; :func:`acquire_fairplay` only chooses the SPC's transport shape.
:func:`report_deleted` sends the sync SPC for destroyed offline keys and
returns the server's verified acknowledgement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from device_emulator.acquire import AcquireResult, HttpLink, acquire, license_url
from device_emulator.cdm.fairplay import SYSTEM, FairPlayCdm, LoadedKey, PendingSpc
from device_emulator.device import Device
from device_emulator.errors import CdmError
from license_server.core.model import LicenseKind
from license_server.protocols.fairplay import fields


def ensure_certificate(cdm: FairPlayCdm, server: str, headers: dict[str, str] | None = None) -> None:
    """Fetch and cache the application certificate if the CDM has none."""
    cdm.prepare(HttpLink(server, license_url(server, SYSTEM, None), headers))


def exchange(cdm: FairPlayCdm, target: str, pending: PendingSpc, *, shape: str = "raw",
             headers: dict[str, str] | None = None) -> bytes:
    """POST the SPC in ``shape``; return the CKC bytes or raise CdmError with the server's code."""
    shaped = FairPlayCdm(cdm.device, audio_only=cdm.audio_only, shape=shape)
    link = HttpLink(target, target, headers)
    return shaped.license_answer(link.send(shaped.wire(pending)))


def acquire_fairplay(device: Device, *, server: str, content_id: str, kind: LicenseKind, url: str | None = None,
                     headers: dict[str, str] | None = None, shape: str = "raw",
                     use: Callable[[LoadedKey, Any], None] | None = None) -> AcquireResult:
    """Acquire a FairPlay-style key with the SPC in ``shape`` (see :func:`device_emulator.acquire.acquire`)."""
    return acquire(device, server=server, content_id=content_id, kind=kind, url=url, headers=headers, use=use,
                   cdm=FairPlayCdm(device, shape=shape))


def report_deleted(device: Device, *, server: str, license_ids: list[str], content_id: str, deleted_at: int,
                   url: str | None = None, headers: dict[str, str] | None = None,
                   shape: str = "raw") -> fields.InvalidationAck:
    """Send the sync SPC for destroyed offline keys; return the verified acknowledgement."""
    cdm = FairPlayCdm(device, shape=shape)
    ensure_certificate(cdm, server, headers)
    pending = cdm.build_sync_spc(fields.DestructionRecord(tuple(license_ids), content_id, deleted_at))
    try:
        answer = exchange(cdm, license_url(server, SYSTEM, url), pending, shape=shape, headers=headers)
    except CdmError:
        device.tee.fairplay_forget(pending.ref)
        raise
    return cdm.process_sync_ack(pending, answer)
