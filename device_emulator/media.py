"""Offline media decryption: encrypted fMP4 renditions in, clear fMP4 out.

:func:`decrypt_rendition` reads an init segment and its media segments,
decrypts every protected sample in place (``cenc`` or ``cbcs``), and returns
one clear fragmented MP4 (init + fragments) that any demuxer reads: the
protected sample entry (``encv``/``enca``) is renamed back to its original
format and the protection boxes (``sinf``, ``pssh``, ``senc``, ``saiz``,
``saio``) become ``free`` boxes of the same size, so no offset moves.

Who holds the key decides who runs AES. The decryption itself is a
:data:`Decryptor` callback ``(kid, samples) -> clear samples``:
:func:`key_decryptor` builds one from raw keys (an L3 app, tests);
:func:`tee_decryptor` asks the device's TEE, so on L1 the content key never
leaves it. A wrong key is detected, never passed on as garbage: decrypted
NAL-structured video must parse (:func:`check_nal_structure`), and
:func:`verify_decodes` runs a real decoder (ffmpeg) over the result.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from device_emulator.mp4 import Mp4Error, TrackInfo, parse_fragments, parse_init
from license_server.crypto.cenc import CencError, ProtectedSample, decrypt_sample

Decryptor = Callable[[bytes, Sequence[ProtectedSample]], list[bytes]]
FFMPEG_HINT = "install ffmpeg (Debian: apt-get install ffmpeg)"


def require_decoder() -> str:
    """The ffmpeg executable; :class:`MediaError` if it is missing (check before any clock starts)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise MediaError(f"ffmpeg is needed to verify decoding: {FFMPEG_HINT}")
    return ffmpeg
AVC_SANE_TYPES = set(range(1, 24))  # 0 and 24..31 are unspecified in H.264
HEVC_SANE_TYPES = set(range(41))  # 41..47 reserved, 48..63 unspecified


class MediaError(Exception):
    """Media could not be decrypted or does not decode; the message says why."""


class WrongKeyError(MediaError):
    """Decryption produced bytes that are not valid media: the key is wrong."""


def key_decryptor(key_for_kid: Callable[[bytes], bytes]) -> Decryptor:
    """A decryptor for callers that hold raw content keys (software path, tests)."""

    def decrypt(kid: bytes, samples: Sequence[ProtectedSample]) -> list[bytes]:
        key = key_for_kid(kid)
        return [decrypt_sample(key, s) for s in samples]

    return decrypt


def tee_decryptor(tee, handle: int) -> Decryptor:
    """A decryptor that runs inside the device's TEE session ``handle``."""

    def decrypt(kid: bytes, samples: Sequence[ProtectedSample]) -> list[bytes]:
        return tee.decrypt_samples(handle, kid, samples)

    return decrypt


def decrypt_rendition(init: Path, segments: Sequence[Path], key_for_kid: Callable[[bytes], bytes] | None = None,
                      *, decryptor: Decryptor | None = None) -> bytes:
    """Decrypt one rendition (init + media segments) into a clear fMP4.

    Pass ``key_for_kid`` (kid -> 16-byte key) or a ``decryptor``. Raises
    :class:`MediaError` for unreadable media and :class:`WrongKeyError` when
    the decrypted video is not valid NAL-structured data.
    """
    if (key_for_kid is None) == (decryptor is None):
        raise ValueError("pass exactly one of key_for_kid and decryptor")
    run = decryptor or key_decryptor(key_for_kid)  # type: ignore[arg-type]
    try:
        init_bytes = bytearray(Path(init).read_bytes())
        tracks, pssh = parse_init(bytes(init_bytes))
        by_id = {t.track_id: t for t in tracks}
        _clear_init(init_bytes, tracks, pssh)
        out = [bytes(init_bytes)]
        for segment in segments:
            out.append(_decrypt_segment(Path(segment).read_bytes(), by_id, run))
    except (Mp4Error, CencError) as exc:
        raise MediaError(f"cannot decrypt: {exc}") from exc
    except OSError as exc:
        raise MediaError(f"cannot read media: {exc}") from exc
    return b"".join(out)


def _clear_init(buf: bytearray, tracks: list[TrackInfo], pssh: list[int]) -> None:
    for track in tracks:
        if track.sinf_offsets:
            buf[track.entry_type_offset:track.entry_type_offset + 4] = track.original_format.encode("latin-1")
        for offset in track.sinf_offsets:
            _neutralise(buf, offset)
    for offset in pssh:
        _neutralise(buf, offset)


def _neutralise(buf: bytearray, offset: int) -> None:
    """Turn the box at ``offset`` into a ``free`` box of the same size."""
    buf[offset + 4:offset + 8] = b"free"


def _decrypt_segment(data: bytes, tracks: dict[int, TrackInfo], run: Decryptor) -> bytes:
    buf = bytearray(data)
    for track_run in parse_fragments(data, tracks):
        for offset in track_run.protection_boxes:
            _neutralise(buf, offset)
        track = track_run.override or tracks.get(track_run.track_id)
        if track is None or not track.is_protected:
            continue
        if track.scheme not in ("cenc", "cbcs"):
            raise MediaError(f"track {track.track_id}: protection scheme {track.scheme!r} is not supported")
        samples = [
            ProtectedSample(track.scheme, ref.iv, data[ref.offset:ref.offset + ref.size], ref.subsamples,
                            track.crypt_byte_block, track.skip_byte_block)
            for ref in track_run.samples
        ]
        clear = run(track.kid, samples)
        if len(clear) != len(samples):
            raise MediaError("the decryptor returned the wrong number of samples")
        for ref, plain in zip(track_run.samples, clear):
            if len(plain) != ref.size:
                raise MediaError("the decryptor changed a sample's size")
            if track.nal_length_size:
                check_nal_structure(plain, track.nal_length_size, hevc=track.original_format in ("hvc1", "hev1"))
            buf[ref.offset:ref.offset + ref.size] = plain
    return bytes(buf)


def check_nal_structure(sample: bytes, length_size: int, *, hevc: bool = False) -> None:
    """Raise :class:`WrongKeyError` unless ``sample`` is a valid run of length-prefixed NAL units.

    The lengths must add up exactly to the sample size, every NAL header must
    have its forbidden zero bit clear, and every nal_unit_type must be one the
    codec defines.
    """
    pos, sane = 0, HEVC_SANE_TYPES if hevc else AVC_SANE_TYPES
    while pos < len(sample):
        if pos + length_size > len(sample):
            raise WrongKeyError("decrypted video is not NAL-structured (truncated length field): wrong key?")
        length = int.from_bytes(sample[pos:pos + length_size], "big")
        pos += length_size
        if length == 0 or pos + length > len(sample):
            raise WrongKeyError("decrypted video NAL lengths do not add up to the sample size: wrong key?")
        header = sample[pos]
        kind = (header >> 1) & 0x3F if hevc else header & 0x1F
        if header & 0x80 or kind not in sane:
            raise WrongKeyError(f"decrypted video has an invalid NAL unit (type {kind}): wrong key?")
        pos += length


def verify_decodes(path: Path | str, *, timeout: float = 120.0) -> None:
    """Decode every frame of ``path`` with ffmpeg; raise :class:`WrongKeyError` on any decode error
    (the criterion of :func:`decode_frames`), :class:`MediaError` if ffmpeg is missing."""
    decode_frames(path, timeout=timeout)


def decode_frames(path: Path | str, *, timeout: float = 120.0) -> dict[str, int]:
    """Decode every frame of ``path`` with ffmpeg and count them by media type.

    A clean decode means ffmpeg exits 0 *and* reports nothing at ``-v error``:
    decoders often conceal corrupt slices and still exit 0, so silence is the
    criterion (:class:`WrongKeyError` otherwise; :class:`MediaError` if ffmpeg
    is missing). The ``framecrc`` muxer lists one line per decoded frame, so
    the counts are what the decoder actually produced, e.g.
    ``{"video": 100, "audio": 188}``.
    """
    ffmpeg = require_decoder()
    try:
        result = subprocess.run(
            [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-xerror", "-i", str(path), "-f", "framecrc", "-"],
            capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"ffmpeg did not finish decoding {path} within {timeout:.0f} s") from exc
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0 or errors:
        detail = "; ".join(errors[:3]) or f"ffmpeg exited with {result.returncode}"
        raise WrongKeyError(f"the decrypted media does not decode (wrong key or corrupt download): {detail}")
    kinds: dict[str, str] = {}
    counts: dict[str, int] = {}
    for line in result.stdout.splitlines():
        if line.startswith("#media_type "):
            stream, _, kind = line[len("#media_type "):].partition(":")
            kinds[stream.strip()] = kind.strip()
        elif line and not line.startswith("#"):
            kind = kinds.get(line.split(",", 1)[0].strip(), "other")
            counts[kind] = counts.get(kind, 0) + 1
    if not counts:
        raise WrongKeyError(f"{path} decoded to no frames at all")
    return counts
