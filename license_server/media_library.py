"""The media origin's view of the disk: packages, safe path resolution, the URL secret.

Layout (written by ``license-server package``)::

    MEDIA/<content_id>/<scheme>/package.json    renditions, KIDs, files, sizes
    MEDIA/<content_id>/<scheme>/manifest.mpd, master.m3u8, <track>/init.mp4, <track>/seg_N.m4s

Nothing outside the media root is ever returned: :meth:`MediaLibrary.resolve`
refuses empty, ``.``/``..``, absolute, backslash or NUL segments, then resolves
symlinks and checks the real path is still inside the (real) root.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from license_server import crypto
from license_server.errors import DrmError, ErrorCode
from license_server.presign import SECRET_BYTES

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
QUALITY_TRACKS: dict[str, tuple[str, ...]] = {"standard": ("AUDIO", "SD"), "high": ("AUDIO", "HD")}
PACKAGE_FILE = "package.json"


class Rendition(BaseModel):
    track: str
    kid: str = Field(pattern=r"^[0-9a-fA-F]{32}$")
    kids: list[str] = []  # key rotation: every period's KID (kid is the first)
    bandwidth: int = Field(ge=0)
    duration: float = Field(ge=0)
    init: str
    segments: list[str]
    sizes: dict[str, int] = {}

    @property
    def files(self) -> list[str]:
        return [self.init, *self.segments]


class Package(BaseModel):
    content_id: str
    scheme: Literal["cenc", "cbcs"]
    created_by: str = ""
    renditions: list[Rendition]

    def rung(self, quality: str) -> list[Rendition]:
        """The renditions of a quality rung, in rung order; raises if one is missing."""
        chosen = []
        for track in QUALITY_TRACKS[quality]:
            rendition = next((r for r in self.renditions if r.track == track), None)
            if rendition is None:
                raise DrmError(ErrorCode.MEDIA_NOT_PACKAGED,
                               f"{self.content_id} ({self.scheme}) has no {track} rendition for {quality} quality")
            chosen.append(rendition)
        return chosen


class MediaLibrary:
    """Packaged titles under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def package(self, content_id: str, scheme: str) -> Package:
        """The package of a title in a scheme; ``MEDIA_NOT_PACKAGED`` if absent or unreadable."""
        if not NAME.match(content_id) or not NAME.match(scheme):
            raise DrmError(ErrorCode.MEDIA_NOT_PACKAGED, "no such package")
        path = self.root / content_id / scheme / PACKAGE_FILE
        try:
            package = Package.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise DrmError(ErrorCode.MEDIA_NOT_PACKAGED,
                           f"{content_id} is not packaged as {scheme} on this server "
                           f"(run `license-server package ... --content {content_id} --scheme {scheme}`)") from exc
        except (OSError, ValueError, ValidationError) as exc:
            raise DrmError(ErrorCode.MEDIA_NOT_PACKAGED, f"the {scheme} package of {content_id} is unreadable") from exc
        if package.content_id != content_id or package.scheme != scheme:
            raise DrmError(ErrorCode.MEDIA_NOT_PACKAGED,
                           f"the {scheme} package of {content_id} describes another title")
        return package

    def file_size(self, content_id: str, scheme: str, relative: str) -> int:
        """Size on disk of a packaged file (the truth the origin will serve)."""
        try:
            return self.resolve([content_id, scheme, *relative.split("/")]).stat().st_size
        except DrmError as exc:
            raise DrmError(ErrorCode.MEDIA_NOT_PACKAGED, f"packaged file {relative} is missing") from exc

    def resolve(self, parts: list[str]) -> Path:
        """The real path of ``root/parts...``; ``MEDIA_NOT_FOUND`` unless it is a file inside the root."""
        if not parts or any(not _safe_segment(p) for p in parts):
            raise DrmError(ErrorCode.MEDIA_NOT_FOUND)
        try:
            root = self.root.resolve(strict=True)
            path = root.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise DrmError(ErrorCode.MEDIA_NOT_FOUND) from exc
        if not path.is_relative_to(root) or not path.is_file():
            raise DrmError(ErrorCode.MEDIA_NOT_FOUND)
        return path


def _safe_segment(segment: str) -> bool:
    return (segment not in ("", ".", "..") and "\\" not in segment and "\x00" not in segment
            and not segment.startswith("/") and ":" not in segment)


class UrlSigningKey:
    """The server's media URL secret: random per data dir, created on first use, never logged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._secret: bytes | None = None

    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = _load_or_create(self.path)
        return self._secret

    def __repr__(self) -> str:
        return f"UrlSigningKey({self.path})"


def _load_or_create(path: Path) -> bytes:
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = crypto.random_bytes(SECRET_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its secret
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret)
    if len(secret) < SECRET_BYTES:
        raise RuntimeError(f"{path} is too short to be a URL signing secret; delete it to regenerate")
    return secret
