"""The ``POST /downloads`` wire models, shared by the server and the device (sans-I/O).

The request names the device, the title, the persistent license the device
already holds and the quality rung; the answer lists the presigned media files
of that rung and the renditions a player needs to play them offline.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

HEX_ID = r"^[0-9a-f]{8,64}$"


class DownloadRequest(BaseModel):
    """Body of ``POST /downloads``."""

    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=HEX_ID)
    content_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    license_id: str = Field(pattern=HEX_ID)
    quality: Literal["standard", "high"] = "standard"
    scheme: Literal["cenc", "cbcs"] = "cenc"
    account: str = Field("dev-account", min_length=1, max_length=128)
    tier: str | None = Field(None, max_length=32)


class DownloadFile(BaseModel):
    path: str  # relative to the package, e.g. sd/seg_1.m4s
    url: str  # presigned, relative to the server: /media/...?exp=...&sig=...
    size: int
    track: str


class DownloadRendition(BaseModel):
    track: str
    kid: str
    kids: list[str] = []  # key rotation: one KID per crypto period
    bandwidth: int
    duration: float
    init: str
    segments: list[str]


class DownloadAnswer(BaseModel):
    """Answer of ``POST /downloads``."""

    download_id: str
    content_id: str
    quality: str
    scheme: str
    expires_at: int
    estimated_bytes: int
    bytes_per_hour: int
    files: list[DownloadFile]
    renditions: list[DownloadRendition]
