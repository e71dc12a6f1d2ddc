"""Test media for the download and decryption tests.

Real packages come from ``license_server.packaging`` (ffmpeg + Shaka
Packager), built once per test session for both schemes. Missing tools fail
the test with a clear message; set ``DRM_SKIP_MEDIA=1`` to skip instead.
Fake packages (arbitrary bytes in the package.json layout) serve the origin
tests that need no decodable media.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from license_server import packaging
from license_server.keyring import load_keyring
from tests.conftest import KEYS

SKIP_ENV = "DRM_SKIP_MEDIA"
CONTENT = "demo-movie"
_CACHE: dict[str, Path] = {}


def require_media_tools() -> None:
    """Fail (or skip with DRM_SKIP_MEDIA=1) unless ffmpeg, ffprobe and shaka-packager are installed."""
    try:
        packaging.find_ffmpeg()
        packaging.find_ffprobe()
        packaging.find_packager()
    except packaging.ToolMissing as exc:
        if os.environ.get(SKIP_ENV) == "1":
            pytest.skip(f"media tools missing ({exc}); skipped because {SKIP_ENV}=1")
        pytest.fail(f"media tools missing: {exc}. Run .ci/setup, or set {SKIP_ENV}=1 to skip media tests.",
                    pytrace=False)


def packaged_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A media root holding demo-movie in cenc and cbcs (4 s, two 2-s segments per rendition)."""
    if "root" not in _CACHE:
        require_media_tools()
        base = tmp_path_factory.mktemp("packaged")
        source = packaging.make_sample(base / "source.mp4", seconds=4)
        keyring = load_keyring(KEYS)
        for scheme in packaging.SCHEMES:
            packaging.package(source, content_id=CONTENT, out=base / "media", scheme=scheme, keyring=keyring)
        _CACHE["root"] = base / "media"
    return _CACHE["root"]


def catalog_keys(content_id: str = CONTENT) -> dict[bytes, bytes]:
    title = load_keyring(KEYS).catalog.title(content_id)
    assert title is not None
    return {t.kid: t.key for t in title.tracks}


def fake_package(root: Path, content_id: str = CONTENT, scheme: str = "cenc", *,
                 tracks: tuple[str, ...] = ("AUDIO", "SD", "HD"), segments: int = 2) -> Path:
    """Write a package.json layout with arbitrary (deterministic) file contents; return its directory."""
    title = load_keyring(KEYS).catalog.title(content_id)
    kids = {t.track.value: t.kid.hex() for t in title.tracks} if title else {}
    directory = root / content_id / scheme
    renditions = []
    for n, track in enumerate(tracks):
        name = track.lower()
        files = [f"{name}/init.mp4"] + [f"{name}/seg_{i}.m4s" for i in range(1, segments + 1)]
        sizes = {}
        for i, rel in enumerate(files):
            path = directory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            size = 600 + 1000 * (n + 1) * (i + 1)
            path.write_bytes(bytes((j * 7 + i + n) % 251 for j in range(size)))
            sizes[rel] = size
        renditions.append({"track": track, "kid": kids.get(track, "00" * 16), "bandwidth": 100_000 * (n + 1),
                           "duration": 2.0 * segments, "init": files[0], "segments": files[1:], "sizes": sizes})
    (directory / "package.json").write_text(json.dumps({
        "content_id": content_id, "scheme": scheme, "created_by": "tests", "renditions": renditions}),
        encoding="utf-8")
    return directory
