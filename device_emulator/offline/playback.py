"""Offline playback of a downloaded title: decrypt in the TEE, then decode.

``device-emulator download`` leaves the encrypted renditions and their
``download.json`` under ``DEVICE_DIR/media/<content_id>/``. Playing offline
decrypts every downloaded rendition with the keys of the loaded license,
inside its TEE session (on L1 the content keys never leave it), and proves
the result is real media: video samples must be well-formed NAL units and
ffmpeg must decode every frame without a single error. A wrong key is thus a
clear failure (``WRONG_KEY``), never garbage handed on. The clear media only
ever exists in a temporary directory for the decoder and is deleted at once.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_emulator.device import Device
from device_emulator.downloader import load_manifest, media_root
from device_emulator.media import (
    Decryptor,
    MediaError,
    WrongKeyError,
    decode_frames,
    decrypt_rendition,
    require_decoder,
)
from device_emulator.offline import OfflineLicense
from device_emulator.tee import TeeError
from license_server.crypto.cenc import ProtectedSample


class PlaybackFailure(Exception):
    """The download cannot be played: a stable ``code``, a viewer ``message``, the key at fault if any."""

    def __init__(self, code: str, message: str, kid: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.kid = kid


@dataclass(frozen=True)
class DownloadPlan:
    """A complete download whose every rendition has a usable key: ready to decrypt."""

    content_id: str
    manifest: dict[str, Any]
    base: Path


def plan_download(device: Device, content_id: str, key_statuses: dict[str, str]) -> DownloadPlan | None:
    """Check, without decrypting anything, that the download can play; ``None`` if never downloaded.

    Raises :class:`PlaybackFailure` when the download is incomplete or a
    rendition's key is missing from the license or not usable here.
    """
    manifest = load_manifest(device, content_id)
    if manifest is None:
        return None
    if manifest.get("status") != "complete":
        raise PlaybackFailure("DOWNLOAD_INCOMPLETE", "The download is not complete; resume it to watch offline")
    for rendition in manifest["renditions"]:
        track = rendition["track"]
        for kid in [k.lower() for k in rendition.get("kids") or [rendition["kid"]]]:  # kids: one per crypto period
            status = key_statuses.get(kid)
            if status is None:
                raise PlaybackFailure("KEY_NOT_LOADED", f"This license holds no key for the {track} track", kid)
            if status != "usable":
                reason = "OUTPUT_RESTRICTED" if status == "output-restricted" else "KEY_NOT_USABLE"
                raise PlaybackFailure(reason, f"The {track} track cannot play here (key {status})", kid)
    try:
        require_decoder()  # before the first play is recorded: a missing tool must not start the playback window
    except MediaError as exc:
        raise PlaybackFailure("MEDIA_ERROR", f"This download cannot be played: {exc}") from exc
    return DownloadPlan(content_id, manifest, media_root(device) / content_id)


def play_download(plan: DownloadPlan, loaded: OfflineLicense) -> dict[str, Any]:
    """Decrypt every rendition in the TEE session of ``loaded`` and decode it; what was done.

    Raises :class:`PlaybackFailure` (``WRONG_KEY``, ``KEY_NOT_LOADED``,
    ``MEDIA_ERROR``, ...) when the media does not decrypt to frames that decode.
    """
    renditions = [_play_rendition(plan.base, rendition, loaded) for rendition in plan.manifest["renditions"]]
    return {
        "scheme": plan.manifest.get("scheme"), "quality": plan.manifest.get("quality"), "system": loaded.system,
        "decrypted_in": "tee" if getattr(loaded.holder, "hardware_backed", False) else "software",
        "renditions": renditions,
        "samples_decrypted": sum(r["samples_decrypted"] for r in renditions),
        "bytes_decrypted": sum(r["bytes_decrypted"] for r in renditions),
        "frames_decoded": sum(sum(r["frames"].values()) for r in renditions),
    }


def _counting(decrypt: Decryptor, counts: dict[str, int]) -> Decryptor:
    """Count the protected samples and their bytes that go through ``decrypt``."""

    def run(kid: bytes, samples: Sequence[ProtectedSample]) -> list[bytes]:
        clear = decrypt(kid, samples)
        counts["samples"] += len(samples)
        counts["bytes"] += sum(len(s.data) for s in samples)
        return clear

    return run


def _play_rendition(base: Path, rendition: dict[str, Any], loaded: OfflineLicense) -> dict[str, Any]:
    track, kid = rendition["track"], rendition["kid"].lower()
    init = base / rendition["init"]
    segments = [base / s for s in rendition["segments"]]
    counts = {"samples": 0, "bytes": 0}
    try:
        clear = decrypt_rendition(init, segments, decryptor=_counting(loaded.decryptor(), counts))
        with tempfile.TemporaryDirectory(prefix="drm-emu-play-") as scratch:
            decoded = Path(scratch) / f"{track.lower()}.mp4"
            decoded.write_bytes(clear)
            frames = decode_frames(decoded)
    except WrongKeyError as exc:
        raise PlaybackFailure("WRONG_KEY", f"The {track} track does not decrypt with this license's key ({exc})",
                              kid) from exc
    except TeeError as exc:
        raise PlaybackFailure(exc.code, f"The {track} track cannot be decrypted: {exc.message}", kid) from exc
    except MediaError as exc:
        raise PlaybackFailure("MEDIA_ERROR", f"The {track} track cannot be played: {exc}", kid) from exc
    return {"track": track, "kid": kid, "segments": len(segments), "file_bytes": len(clear),
            "samples_decrypted": counts["samples"], "bytes_decrypted": counts["bytes"], "frames": frames}
