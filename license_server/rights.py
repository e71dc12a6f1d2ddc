"""Content-owner rights and the business rules of downloads: ``rights.json``.

The shipped rules live next to the catalog (``keys/rights.json``, written by
``license-server keys init``), shared by every namespace and re-read (at most one
look a second) when the file changes. Changes made through the admin API are a
namespace's overlay, its ``rights`` state document, which then takes precedence
(the default namespace imports a pre-namespace ``<data_dir>/rights.json`` once).

Shape (durations are seconds or strings such as ``30d``)::

    {
      "max_active_downloads_per_device": 100,
      "tiers": {"premium": {"downloads": true, "device_cap": 6, "max_streams": 4,
                            "stream_mode": "block_new", "stream_lease": 60, "stream_grace": 30}, ...},
      "titles": {"stream-only": {"downloadable": false},
                 "demo-movie": {"rental": "30d", "playback": "48h", "regions": null,
                                "tracks": {"UHD1": {"min_level": "L1", "hdcp": "V2_2"}}}}
    }

A title that is not listed gets the default :class:`TitleRights` (downloadable,
the default policy's windows, every region). A tier that is not listed has no
download rights.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from license_server.clock import monotonic
from license_server.store_api import RIGHTS_DOCUMENT, StateDocuments
from license_server.tokens import TrackRule, duration_seconds

RIGHTS_FILE = "rights.json"
log = logging.getLogger(__name__)


class TierRights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    downloads: bool = Field(False, description="Accounts of this tier may download (persistent licenses).")
    device_cap: int | None = Field(None, ge=0, description="Devices of one account holding downloads at once.")
    monthly_allowance: int | None = Field(
        None, ge=0, description="Downloads per device per calendar month (server clock, UTC); null: no allowance."
    )
    max_streams: int | None = Field(
        None, ge=0, le=1000, description="Concurrent streams of one account (stream sessions); null: no limit."
    )
    stream_mode: Literal["block_new", "evict_oldest"] = Field(
        "block_new", description="Over the limit: refuse the new stream, or end the account's oldest one."
    )
    stream_lease: int = Field(60, ge=1, le=86400, description="Seconds a heartbeat (renewal) keeps a stream alive.")
    stream_grace: int = Field(30, ge=0, le=86400, description="Seconds past the lease before its slot is freed.")

    _stream_durations = field_validator("stream_lease", "stream_grace", mode="before")(duration_seconds)


class TitleRights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    downloadable: bool = True
    rental: int | None = Field(None, ge=0, description="Storage window (seconds) of persistent licenses.")
    playback: int | None = Field(None, ge=0, description="Playback window (seconds) from first play.")
    regions: list[str] | None = Field(None, description="ISO 3166 alpha-2 codes; null: everywhere.")
    tracks: dict[str, TrackRule] = Field(default_factory=dict)
    renewal_delay: int | None = Field(None, ge=0, description="Seconds after the license start before renewing.")
    renewal_retry: int | None = Field(None, ge=0, description="Seconds between attempts of a failed renewal.")
    renewal_recovery: int | None = Field(None, ge=0, description="Seconds past expiry a renewal is still accepted.")
    renewal_server_url: str | None = Field(None, max_length=2048, description="Where renewals go (default: the "
                                           "license URL).")
    renew_with_usage: bool | None = None

    _durations = field_validator("rental", "playback", "renewal_delay", "renewal_retry", "renewal_recovery",
                                 mode="before")(duration_seconds)

    @field_validator("regions")
    @classmethod
    def _upper(cls, value: list[str] | None) -> list[str] | None:
        return [code.upper() for code in value] if value is not None else None

    @field_validator("tracks")
    @classmethod
    def _known_tracks(cls, value: dict[str, TrackRule]) -> dict[str, TrackRule]:
        unknown = set(value) - {"AUDIO", "SD", "HD", "UHD1"}
        if unknown:
            raise ValueError(f"unknown track(s) {sorted(unknown)}")
        return value


class Rights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_active_downloads_per_device: int = Field(100, ge=0)
    tiers: dict[str, TierRights] = Field(default_factory=dict)
    titles: dict[str, TitleRights] = Field(default_factory=dict)

    def tier(self, name: str | None) -> TierRights:
        return self.tiers.get((name or "").lower()) or _NO_TIER_RIGHTS

    def title(self, content_id: str) -> TitleRights:
        return self.titles.get(content_id) or _DEFAULT_TITLE_RIGHTS


# The defaults handed out for tiers and titles without an entry: built once, not per request (read-only).
_NO_TIER_RIGHTS = TierRights()
_DEFAULT_TITLE_RIGHTS = TitleRights()


def default_rights(stream_only: tuple[str, ...] = ()) -> Rights:
    """The shipped rules: caps by tier as common services publish them."""
    return Rights(
        max_active_downloads_per_device=100,
        tiers={
            "premium": TierRights(downloads=True, device_cap=6),
            "standard": TierRights(downloads=True, device_cap=2),
            "ads": TierRights(downloads=True, device_cap=2, monthly_allowance=15),
            "basic": TierRights(downloads=False),
        },
        titles={content_id: TitleRights(downloadable=False) for content_id in stream_only},
    )


SHIPPED_CHECK_SECONDS = 1.0


class ShippedRights:
    """The keyring's ``rights.json``, shared by every namespace: re-read when it changes on disk,
    looking (one ``stat``) at most once a second rather than on every request (issue 14)."""

    def __init__(self, path: Path, *, check_every: float = SHIPPED_CHECK_SECONDS) -> None:
        self.path = path
        self.check_every = check_every
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._stamp: tuple[int, int] | None = None
        self._rights: Rights | None = None

    def current(self) -> Rights | None:
        """The shipped rules, or ``None`` without a (valid) file; a broken file keeps the last good rules."""
        now = monotonic()
        if self._checked_at is not None and now - self._checked_at < self.check_every:
            return self._rights
        with self._lock:
            self._checked_at = now
            try:
                stat = self.path.stat()
            except OSError:
                self._stamp, self._rights = None, None
                return None
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._rights = Rights.model_validate(json.loads(self.path.read_text(encoding="utf-8")))
                except (OSError, ValueError, ValidationError) as exc:
                    log.error("%s is invalid, keeping the previous rights: %s", self.path, exc)
        return self._rights


class RightsBook:
    """A namespace's current :class:`Rights`: its overlay (the ``rights`` state document, written
    by the admin API) when present, else the shipped rules."""

    def __init__(self, shipped: ShippedRights, documents: StateDocuments) -> None:
        self.shipped = shipped
        self.documents = documents
        self._overlay: Rights | None = None

    def load(self, text: str | None) -> None:
        """Parse the overlay document (called when the store's state generation moved)."""
        if text is None:
            self._overlay = None
            return
        try:
            self._overlay = Rights.model_validate_json(text)
        except (ValueError, ValidationError) as exc:
            log.error("the rights overlay is invalid, keeping the previous rights: %s", exc)

    def current(self) -> Rights:
        if self._overlay is not None:
            return self._overlay
        return self.shipped.current() or Rights()

    def replace(self, rights: Rights) -> Rights:
        """Store ``rights`` as the overlay and serve them from now on.

        Rights equal to the shipped file remove the overlay instead, so putting the saved rules
        back (as a conformance run does) leaves nothing behind that would shadow the shipped file.
        """
        body = None if rights == self.shipped.current() else rights.model_dump_json(indent=2)
        self.load(self.documents.update_document(RIGHTS_DOCUMENT, lambda _: body))
        return rights
