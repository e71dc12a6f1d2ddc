"""Download authorization: who may download what, and the plan they get.

Pure decisions over values the handler looked up (no aiohttp, no SQL, no
clock reads). An offline title is two downloads: the persistent license
(acquired first, through a license dialect) and the encrypted media, which
this module authorizes as a list of files of one quality rung.

Rules:
* the device must be known to the server (it obtained a license before);
* its model's device type must be ``mobile`` or ``tablet``
  (``DEVICE_TYPE_NOT_ALLOWED`` otherwise, e.g. a laptop);
* the account tier must have download rights in ``rights.json``
  (``TIER_NOT_ALLOWED``; the shipped rules: premium, standard and ads do, basic does not);
* with an entitlement token: the token must cover the title, its region and device binding
  must match, and the license must be the token's account's;
* the license must be this device's active persistent license for the title;
* the title must be downloadable and packaged in the requested scheme.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from license_server.core.entitlements import Entitlement
from license_server.core.lifecycle import State, current_state
from license_server.core.ports import LicenseRecord
from license_server.errors import DrmError, ErrorCode
from license_server.media_library import Package, Rendition
from license_server.protocols.downloads import (  # noqa: F401 - the wire models, re-exported
    DownloadAnswer,
    DownloadFile,
    DownloadRendition,
    DownloadRequest,
)
from license_server.rights import Rights

ALLOWED_DEVICE_TYPES = ("mobile", "tablet")
DEV_MODE_TIER = "premium"  # development mode (no token): the tier when the body names none


@dataclass(frozen=True)
class Downloader:
    """Who downloads: the account and tier, from the token (or the body in development mode)."""

    account: str
    tier: str


def resolve_downloader(request: DownloadRequest, entitlement: Entitlement) -> Downloader:
    """With a token, account and tier are the token's (the body's are ignored); in development
    mode they come from the body, the tier defaulting to premium."""
    if entitlement.is_development or entitlement.account is None:
        return Downloader(account=request.account, tier=(request.tier or DEV_MODE_TIER).lower())
    return Downloader(account=entitlement.account, tier=(entitlement.tier or "").lower())


def check_device(device_row: dict[str, Any] | None, device_type: str | None) -> None:
    if device_row is None:
        raise DrmError(ErrorCode.DEVICE_NOT_FOUND, "this device never obtained a license from this server")
    if device_type not in ALLOWED_DEVICE_TYPES:
        raise DrmError(ErrorCode.DEVICE_TYPE_NOT_ALLOWED,
                       f"downloads are for {' and '.join(ALLOWED_DEVICE_TYPES)} devices; this one is "
                       f"a {device_type or 'device of unknown type'}")


def check_tier(downloader: Downloader, rights: Rights) -> None:
    if not rights.tier(downloader.tier).downloads:
        allowed = sorted(name for name, tier in rights.tiers.items() if tier.downloads)
        raise DrmError(ErrorCode.TIER_NOT_ALLOWED,
                       f"the {downloader.tier!r} tier does not include downloads ({', '.join(allowed)} do)")


def check_account(record: LicenseRecord | None, downloader: Downloader, entitlement: Entitlement) -> None:
    """With a token, the license must have been issued to the token's account."""
    if record is not None and not entitlement.is_development and record.account not in (None, downloader.account):
        raise DrmError(ErrorCode.LICENSE_NOT_FOUND, "no such license for this account")


def check_license(record: LicenseRecord | None, *, device_id: str, content_id: str, now: int) -> None:
    """The license must be this device's unreleased, unexpired persistent license for the title."""
    if record is None or record.device_id != device_id or record.content_id != content_id:
        raise DrmError(ErrorCode.LICENSE_NOT_FOUND, "no such license for this device and title")
    if record.kind != "persistent":
        raise DrmError(ErrorCode.PERSISTENT_LICENSE_REQUIRED, "a download needs a persistent (offline) license")
    try:
        state = current_state(State(record.state), record.policy, record.license_start or record.issued_at, now)
    except ValueError:  # a state this module does not know: not usable for a download
        raise DrmError(ErrorCode.LICENSE_EXPIRED, f"the license is {record.state}") from None
    if state is State.RELEASED:
        raise DrmError(ErrorCode.LICENSE_RELEASED, "the license was released")
    if state is State.EXPIRED:
        raise DrmError(ErrorCode.LICENSE_EXPIRED, "the license is no longer valid")


def estimate(renditions: list[Rendition], sizes: dict[str, int]) -> tuple[int, int]:
    """(total bytes, bytes per hour of playback) of a rung, from the real file sizes."""
    total = sum(sizes.values())
    per_hour = 0
    for rendition in renditions:
        rendition_bytes = sum(sizes[f] for f in rendition.files)
        if rendition.duration > 0:
            per_hour += round(rendition_bytes * 3600 / rendition.duration)
        else:
            per_hour += rendition.bandwidth * 3600 // 8
    return total, per_hour


def rung_files(package: Package, quality: str) -> tuple[list[Rendition], list[tuple[str, str]]]:
    """The renditions of the rung and its (relative path, track) files, init first."""
    renditions = package.rung(quality)
    return renditions, [(path, r.track) for r in renditions for path in r.files]
