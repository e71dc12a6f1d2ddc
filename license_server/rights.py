"""Content-owner rights and the business rules of downloads: ``rights.json``.

The shipped rules live next to the catalog (``keys/rights.json``, written by
``license-server keys init``). Changes made through the admin API are written
to ``<data_dir>/rights.json``, which then takes precedence; both files are
re-read when they change on disk, so a hand edit applies without a restart.

Shape (durations are seconds or strings such as ``30d``)::

    {
      "max_active_downloads_per_device": 100,
      "tiers": {"premium": {"downloads": true, "device_cap": 6}, ...},
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
import os
import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class TitleRights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    downloadable: bool = True
    rental: int | None = Field(None, ge=0, description="Storage window (seconds) of persistent licenses.")
    playback: int | None = Field(None, ge=0, description="Playback window (seconds) from first play.")
    regions: list[str] | None = Field(None, description="ISO 3166 alpha-2 codes; null: everywhere.")
    tracks: dict[str, TrackRule] = Field(default_factory=dict)

    _durations = field_validator("rental", "playback", mode="before")(duration_seconds)

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


class RightsBook:
    """The current :class:`Rights`: the shipped file, or the admin's overlay when present."""

    def __init__(self, shipped: Path, overlay: Path) -> None:
        self.shipped = shipped
        self.overlay = overlay
        self._lock = threading.Lock()
        self._loaded: tuple[Path, float] | None = None
        self._rights = Rights()

    def _source(self) -> Path | None:
        for path in (self.overlay, self.shipped):
            if path.exists():
                return path
        return None

    def current(self) -> Rights:
        """Re-read the governing file when it changed; a broken file keeps the last good rules."""
        source = self._source()
        if source is None:
            return self._rights
        mtime = source.stat().st_mtime
        if self._loaded != (source, mtime):
            with self._lock:
                try:
                    self._rights = Rights.model_validate(json.loads(source.read_text(encoding="utf-8")))
                except (OSError, ValueError, ValidationError) as exc:
                    log.error("%s is invalid, keeping the previous rights: %s", source, exc)
                self._loaded = (source, mtime)
        return self._rights

    def _shipped_rights(self) -> Rights | None:
        try:
            return Rights.model_validate(json.loads(self.shipped.read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError):
            return None

    def replace(self, rights: Rights) -> Rights:
        """Persist ``rights`` to the overlay file (atomically) and serve them from now on.

        Rights equal to the shipped file remove the overlay instead, so putting the saved rules
        back (as a conformance run does) leaves no file behind that would shadow the shipped one.
        """
        if rights == self._shipped_rights():
            with self._lock:
                self.overlay.unlink(missing_ok=True)
                self._rights = rights
                self._loaded = (self.shipped, self.shipped.stat().st_mtime)
            return rights
        self.overlay.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.overlay.with_suffix(".json.tmp")
        temporary.write_text(rights.model_dump_json(indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, self.overlay)
        with self._lock:
            self._rights = rights
            self._loaded = (self.overlay, self.overlay.stat().st_mtime)
        return rights
