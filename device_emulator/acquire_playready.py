"""PlayReady-style exchanges beyond the common acquisition: Secure Stop and Secure Delete.

Acquisition (with its acknowledgement) is :func:`device_emulator.acquire.acquire`
with the PlayReady CDM; :func:`acquire_playready` only chooses the WRMHEADER
version. ``secure_stop`` and ``secure_delete`` send the signed reports and
return the verified answer; the caller purges its own records only after
``secure_delete`` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from device_emulator import transport
from device_emulator.acquire import AcquireResult, acquire, license_url
from device_emulator.cdm.playready import (
    DEFAULT_HEADER_VERSION,
    SOAP_CONTENT_TYPE,
    LoadedLicense,
    PendingReport,
    PlayReadyCdm,
    soap_action,
)
from device_emulator.device import Device
from device_emulator.errors import CdmError
from license_server.core.model import LicenseKind
from license_server.protocols.playready import SYSTEM, reports


def post_soap(url: str, operation: str, body: bytes, headers: dict[str, str] | None = None) -> transport.HttpReply:
    return transport.post(url, body, content_type=SOAP_CONTENT_TYPE, headers={**(headers or {}),
                                                                              **soap_action(operation)})


def acquire_playready(device: Device, *, server: str, content_id: str, kind: LicenseKind, url: str | None = None,
                      headers: dict[str, str] | None = None, header_version: str = DEFAULT_HEADER_VERSION,
                      use: Callable[[LoadedLicense, Any], None] | None = None) -> AcquireResult:
    """Acquire a license for a WRMHEADER of ``header_version`` (see :func:`device_emulator.acquire.acquire`)."""
    return acquire(device, server=server, content_id=content_id, kind=kind, url=url, headers=headers, use=use,
                   cdm=PlayReadyCdm(device, header_version=header_version))


def _send(cdm: PlayReadyCdm, url: str, pending: PendingReport, headers: dict[str, str] | None) -> reports.ReportAnswer:
    reply = post_soap(url, pending.operation, pending.body, headers)
    try:
        return cdm.process_report_answer(pending, reply.body)
    except CdmError as exc:
        raise CdmError(reply.error_code or exc.code, exc.message) from exc


def secure_stop(device: Device, *, server: str, license_id: str, kids: tuple[bytes, ...], start: int, stop: int,
                url: str | None = None, headers: dict[str, str] | None = None) -> reports.ReportAnswer:
    """Report the end of playback of a non-persistent license."""
    cdm = PlayReadyCdm(device)
    pending = cdm.build_secure_stop(license_id, kids, start=start, stop=stop)
    return _send(cdm, license_url(server, SYSTEM, url), pending, headers)


def secure_delete(device: Device, *, server: str, license_id: str, kids: tuple[bytes, ...],
                  deleted_at: int | None = None, url: str | None = None,
                  headers: dict[str, str] | None = None) -> reports.ReportAnswer:
    """Report the destruction of a persistent license; purge only after this returns."""
    cdm = PlayReadyCdm(device)
    pending = cdm.build_secure_delete(license_id, kids, deleted_at=deleted_at)
    return _send(cdm, license_url(server, SYSTEM, url), pending, headers)
