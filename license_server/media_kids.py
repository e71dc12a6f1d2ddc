"""The key ids an encrypted fMP4 rendition uses (pure functions over bytes).

``tenc`` (ISO/IEC 23001-7) gives a track's default KID; with key rotation it is
zero and every fragment names its key in a ``seig`` sample group description
(``sgpd``). Used by ``license-server package --key-server``, which learns the
KIDs from the packager's output instead of choosing them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"moof", b"traf", b"sinf", b"schi",
               b"encv", b"enca"}
_SKIP = {b"stsd": 8, b"encv": 78, b"enca": 28}  # bytes of fields before a container's child boxes


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of every box, descending into containers."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        if kind in _CONTAINERS:
            yield from _boxes(data, pos + header + _SKIP.get(kind, 0), pos + size)
        pos += size


def rendition_kids(init: bytes, segments: list[bytes]) -> list[bytes]:
    """The distinct non-zero KIDs of a rendition, in order of first use."""
    kids: list[bytes] = []
    for kind, body, _ in _boxes(init):
        if kind == b"tenc":
            kids.append(init[body + 8:body + 24])
    for segment in segments:
        for kind, body, _end in _boxes(segment):
            if kind == b"sgpd" and segment[body + 4:body + 8] == b"seig":
                version = segment[body]
                pos = body + 8 + (4 if version >= 1 else 0)
                count = struct.unpack_from(">I", segment, pos)[0]
                pos += 4
                for _ in range(count):
                    length = 20
                    if version == 1 and struct.unpack_from(">I", segment, body + 8)[0] == 0:
                        length = struct.unpack_from(">I", segment, pos)[0]
                        pos += 4
                    kids.append(segment[pos + 4:pos + 20])
                    pos += max(length, 20)
    ordered = []
    for kid in kids:
        if any(kid) and kid not in ordered:
            ordered.append(kid)
    return ordered
