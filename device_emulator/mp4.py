"""A small ISO BMFF (fragmented MP4) reader for Common Encryption.

It reads what decryption needs and nothing more, from the box definitions of
ISO/IEC 14496-12 (boxes, ``tkhd``, ``hdlr``, ``stsd`` sample entries,
``trex``, ``moof``/``traf``/``tfhd``/``trun``) and ISO/IEC 23001-7 (``sinf``,
``frma``, ``schm``, ``tenc``, ``senc``). Pure functions over ``bytes``: no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"sinf", b"schi",
              b"edts", b"dinf"}
VISUAL_ENTRY_FIELDS = 78  # bytes between a VisualSampleEntry header and its child boxes
AUDIO_ENTRY_FIELDS = 28  # same for a (version 0) AudioSampleEntry


class Mp4Error(Exception):
    """The bytes are not the fragmented MP4 this reader understands."""


@dataclass(frozen=True)
class Box:
    type: bytes
    start: int  # offset of the size field
    body: int  # offset of the payload (after size/type/largesize)
    end: int

    def payload(self, data: bytes) -> bytes:
        return data[self.body:self.end]


def iter_boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes laid end to end in ``data[start:end]``; raises on a truncated box."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        if end - pos < 8:
            raise Mp4Error(f"truncated box header at offset {pos}")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise Mp4Error(f"truncated large box header at offset {pos}")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise Mp4Error(f"box {kind!r} at offset {pos} overruns its parent")
        yield Box(kind, pos, pos + header, pos + size)
        pos += size


def children(data: bytes, box: Box, skip: int = 0) -> list[Box]:
    return list(iter_boxes(data, box.body + skip, box.end))


def find(data: bytes, box: Box, kind: bytes, skip: int = 0) -> Box | None:
    return next((b for b in children(data, box, skip) if b.type == kind), None)


def full_box(data: bytes, box: Box) -> tuple[int, int, int]:
    """(version, flags, offset of the fields after them)."""
    if box.end - box.body < 4:
        raise Mp4Error(f"{box.type!r} is too short")
    word = struct.unpack_from(">I", data, box.body)[0]
    return word >> 24, word & 0xFFFFFF, box.body + 4


# ------------------------------------------------------------------ init

@dataclass
class TrackInfo:
    """One track of an init segment, with its Common Encryption parameters."""

    track_id: int
    handler: str  # "vide" | "soun" | ...
    entry_type: str  # e.g. "encv", "enca", "avc1"
    original_format: str  # frma, e.g. "avc1", "mp4a"
    scheme: str | None = None  # schm: "cenc" | "cbcs" | None (clear)
    is_protected: bool = False
    iv_size: int = 0
    kid: bytes = b""
    crypt_byte_block: int = 0
    skip_byte_block: int = 0
    constant_iv: bytes = b""
    nal_length_size: int = 0  # avcC / hvcC; 0 if not NAL-structured
    default_sample_size: int = 0  # from trex
    # byte offsets the clear rewrite touches
    entry_type_offset: int = 0
    sinf_offsets: list[int] = field(default_factory=list)


def parse_init(data: bytes) -> tuple[list[TrackInfo], list[int]]:
    """The tracks of an init segment and the offsets of its ``pssh`` boxes."""
    top = list(iter_boxes(data))
    moov = next((b for b in top if b.type == b"moov"), None)
    if moov is None:
        raise Mp4Error("no moov box: not an init segment")
    tracks: dict[int, TrackInfo] = {}
    pssh = [b.start for b in children(data, moov) if b.type == b"pssh"]
    for trak in (b for b in children(data, moov) if b.type == b"trak"):
        info = _track(data, trak)
        tracks[info.track_id] = info
    mvex = find(data, moov, b"mvex")
    for trex in (b for b in children(data, mvex) if b.type == b"trex") if mvex else ():
        _, _, pos = full_box(data, trex)
        track_id, _, _, size = struct.unpack_from(">IIII", data, pos)
        if track_id in tracks:
            tracks[track_id].default_sample_size = size
    return list(tracks.values()), pssh


def _track(data: bytes, trak: Box) -> TrackInfo:
    tkhd = find(data, trak, b"tkhd")
    mdia = find(data, trak, b"mdia")
    if tkhd is None or mdia is None:
        raise Mp4Error("a trak lacks tkhd or mdia")
    version, _, pos = full_box(data, tkhd)
    track_id = struct.unpack_from(">I", data, pos + (16 if version == 1 else 8))[0]
    hdlr = find(data, mdia, b"hdlr")
    handler = data[hdlr.body + 8:hdlr.body + 12].decode("latin-1") if hdlr else ""
    minf = find(data, mdia, b"minf")
    stbl = find(data, minf, b"stbl") if minf else None
    stsd = find(data, stbl, b"stsd") if stbl else None
    if stsd is None:
        raise Mp4Error(f"track {track_id} has no stsd")
    entries = children(data, stsd, skip=8)  # version/flags + entry_count
    if not entries:
        raise Mp4Error(f"track {track_id} has no sample entry")
    entry = entries[0]
    skip = VISUAL_ENTRY_FIELDS if handler == "vide" else AUDIO_ENTRY_FIELDS if handler == "soun" else None
    info = TrackInfo(track_id, handler, entry.type.decode("latin-1"), entry.type.decode("latin-1"),
                     entry_type_offset=entry.start + 4)
    if skip is None:
        return info
    for child in children(data, entry, skip=skip):
        if child.type in (b"avcC", b"hvcC"):
            info.nal_length_size = _nal_length_size(data, child)
        elif child.type == b"sinf":
            info.sinf_offsets.append(child.start)
            _protection(data, child, info)
    return info


def _nal_length_size(data: bytes, box: Box) -> int:
    index = 4 if box.type == b"avcC" else 21
    if box.end - box.body <= index:
        raise Mp4Error(f"{box.type!r} is too short")
    return (data[box.body + index] & 0x03) + 1


def _protection(data: bytes, sinf: Box, info: TrackInfo) -> None:
    frma = find(data, sinf, b"frma")
    if frma is not None:
        info.original_format = data[frma.body:frma.body + 4].decode("latin-1")
    schm = find(data, sinf, b"schm")
    if schm is not None:
        info.scheme = data[schm.body + 4:schm.body + 8].decode("latin-1")
    schi = find(data, sinf, b"schi")
    tenc = find(data, schi, b"tenc") if schi else None
    if tenc is None:
        raise Mp4Error(f"track {info.track_id} is protected but has no tenc box")
    version, _, pos = full_box(data, tenc)
    pattern = data[pos + 1]
    if version >= 1:
        info.crypt_byte_block, info.skip_byte_block = pattern >> 4, pattern & 0x0F
    info.is_protected = data[pos + 2] == 1
    info.iv_size = data[pos + 3]
    info.kid = data[pos + 4:pos + 20]
    if info.is_protected and info.iv_size == 0:
        size = data[pos + 20]
        info.constant_iv = data[pos + 21:pos + 21 + size]
    if info.iv_size not in (0, 8, 16) or (info.iv_size == 0 and info.is_protected and not info.constant_iv):
        raise Mp4Error(f"track {info.track_id}: bad IV size {info.iv_size}")


# -------------------------------------------------------------- fragments

@dataclass(frozen=True)
class SampleRef:
    """Where one sample sits in a segment, with its encryption entry (if any)."""

    offset: int
    size: int
    iv: bytes = b""
    subsamples: tuple[tuple[int, int], ...] = ()


@dataclass
class TrackRun:
    track_id: int
    samples: list[SampleRef]
    protection_boxes: list[int]  # offsets of senc/saiz/saio/pssh to neutralise
    override: TrackInfo | None = None  # this fragment's seig sample group (key rotation): its KID and IV size


def parse_fragments(data: bytes, tracks: dict[int, TrackInfo]) -> list[TrackRun]:
    """Every sample of every ``moof``/``traf`` in a media segment."""
    runs: list[TrackRun] = []
    top = list(iter_boxes(data))
    mdats = [(b.body, b.end) for b in top if b.type == b"mdat"]
    for moof in (b for b in top if b.type == b"moof"):
        next_base = moof.start
        for child in children(data, moof):
            if child.type == b"pssh":
                runs.append(TrackRun(0, [], [child.start]))
            if child.type != b"traf":
                continue
            run, next_base = _traf(data, moof, child, tracks, next_base)
            for s in run.samples:
                if not any(lo <= s.offset and s.offset + s.size <= hi for lo, hi in mdats):
                    raise Mp4Error(f"a sample of track {run.track_id} lies outside every mdat")
            runs.append(run)
    return runs


def _traf(data: bytes, moof: Box, traf: Box, tracks: dict[int, TrackInfo], next_base: int) -> tuple[TrackRun, int]:
    boxes = children(data, traf)
    tfhd = next((b for b in boxes if b.type == b"tfhd"), None)
    if tfhd is None:
        raise Mp4Error("traf without tfhd")
    _, flags, pos = full_box(data, tfhd)
    track_id = struct.unpack_from(">I", data, pos)[0]
    track = tracks.get(track_id)
    if track is None:
        raise Mp4Error(f"fragment for unknown track {track_id}")
    pos += 4
    base = moof.start if flags & 0x020000 else next_base
    if flags & 0x01:
        base = struct.unpack_from(">Q", data, pos)[0]
        pos += 8
    pos += 4 if flags & 0x02 else 0
    pos += 4 if flags & 0x08 else 0
    default_size = struct.unpack_from(">I", data, pos)[0] if flags & 0x10 else track.default_sample_size
    override = _seig(data, boxes, track)
    if override is None and track.is_protected and not any(track.kid) and not any(b.type == b"senc" for b in boxes):
        # Key rotation leaves tenc's KID zero; a clear-lead fragment then has neither seig nor senc.
        override = replace(track, is_protected=False)
    placed: list[tuple[int, int]] = []
    cursor = base
    for trun in (b for b in boxes if b.type == b"trun"):
        cursor = _trun(data, trun, base, cursor, default_size, placed)
    entries = _senc(data, next((b for b in boxes if b.type == b"senc"), None), override or track, len(placed))
    samples = [SampleRef(o, n, *entries[i]) if entries else SampleRef(o, n) for i, (o, n) in enumerate(placed)]
    neutral = [b.start for b in boxes if b.type in (b"senc", b"saiz", b"saio", b"pssh")
               or (b.type in (b"sbgp", b"sgpd") and data[b.body + 4:b.body + 8] == b"seig")]
    return TrackRun(track_id, samples, neutral, override), cursor


def _seig(data: bytes, boxes: list[Box], track: TrackInfo) -> TrackInfo | None:
    """The fragment's ``seig`` CencSampleEncryptionInformationGroupEntry (ISO/IEC 23001-7), which key
    rotation uses to give a fragment its own KID; None when the fragment uses the ``tenc`` defaults."""
    sbgp = next((b for b in boxes if b.type == b"sbgp" and data[b.body + 4:b.body + 8] == b"seig"), None)
    if sbgp is None:
        return None
    version, _, pos = full_box(data, sbgp)
    pos += 8 if version == 1 else 4
    count = struct.unpack_from(">I", data, pos)[0]
    if pos + 4 + 8 * count > sbgp.end:
        raise Mp4Error("sbgp overruns its box")
    indexes = {index for n, index in struct.iter_unpack(">II", data[pos + 4:pos + 4 + 8 * count]) if n}
    if len(indexes) > 1:
        raise Mp4Error("a fragment mixing several seig sample groups is not supported")
    index = indexes.pop() if indexes else 0
    if index == 0:
        return None
    if index <= 0x10000:
        raise Mp4Error("seig groups described in the init segment are not supported")
    sgpd = next((b for b in boxes if b.type == b"sgpd" and data[b.body + 4:b.body + 8] == b"seig"), None)
    if sgpd is None:
        raise Mp4Error("sbgp names a seig group but the fragment has no sgpd")
    version, _, pos = full_box(data, sgpd)
    pos += 4
    default_length = 0
    if version == 1:
        default_length = struct.unpack_from(">I", data, pos)[0]
        pos += 4
    elif version >= 2:
        pos += 4
    entries = struct.unpack_from(">I", data, pos)[0]
    pos += 4
    entry = None
    for i in range(entries):
        length = default_length
        if version == 1 and default_length == 0:
            length = struct.unpack_from(">I", data, pos)[0]
            pos += 4
        if i == index - 0x10001:
            entry = pos
        pos += length or 20
    if entry is None or pos > sgpd.end:
        raise Mp4Error("the seig group index is outside the fragment's sgpd")
    pattern, protected, iv_size = data[entry + 1], data[entry + 2], data[entry + 3]
    kid = data[entry + 4:entry + 20]
    constant_iv = b""
    if protected and iv_size == 0:
        constant_iv = data[entry + 21:entry + 21 + data[entry + 20]]
    return replace(track, is_protected=bool(protected), iv_size=iv_size, kid=kid, constant_iv=constant_iv,
                   crypt_byte_block=pattern >> 4, skip_byte_block=pattern & 0x0F)


def _trun(data: bytes, trun: Box, base: int, cursor: int, default_size: int,
          placed: list[tuple[int, int]]) -> int:
    _, flags, pos = full_box(data, trun)
    count = struct.unpack_from(">I", data, pos)[0]
    pos += 4
    if flags & 0x01:
        cursor = base + struct.unpack_from(">i", data, pos)[0]
        pos += 4
    pos += 4 if flags & 0x04 else 0
    per_sample = sum(4 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    if pos + count * per_sample > trun.end:
        raise Mp4Error("trun sample table overruns its box")
    for _ in range(count):
        p = pos + (4 if flags & 0x100 else 0)
        size = struct.unpack_from(">I", data, p)[0] if flags & 0x200 else default_size
        placed.append((cursor, size))
        cursor += size
        pos += per_sample
    return cursor


def _senc(data: bytes, senc: Box | None, track: TrackInfo, samples: int) -> list[tuple[bytes, tuple]]:
    if not track.is_protected:
        return []
    if senc is None:
        raise Mp4Error(f"track {track.track_id} is protected but a fragment has no senc box")
    _, flags, pos = full_box(data, senc)
    if flags & 0x01:
        raise Mp4Error("senc with overridden track encryption parameters is not supported")
    count = struct.unpack_from(">I", data, pos)[0]
    pos += 4
    if count != samples:
        raise Mp4Error(f"senc lists {count} samples, the runs {samples}")
    entries = []
    for _ in range(count):
        iv = data[pos:pos + track.iv_size] if track.iv_size else track.constant_iv
        pos += track.iv_size
        subs: tuple[tuple[int, int], ...] = ()
        if flags & 0x02:
            n = struct.unpack_from(">H", data, pos)[0]
            pos += 2
            subs = tuple(struct.unpack_from(">HI", data, pos + 6 * i) for i in range(n))
            pos += 6 * n
        if pos > senc.end:
            raise Mp4Error("senc overruns its box")
        entries.append((iv, subs))
    return entries
