"""PSSH boxes of every system (one box, or several back to back as in an init segment)."""

from __future__ import annotations

import logging
import struct
import uuid
from typing import Any

from license_server.dialects import REGISTRY
from license_server.inspect.model import Context, Decoded, NotMine
from license_server.inspect.protobuf_view import view
from license_server.protocols.playready import wrmheader
from license_server.protocols.widevine import license_protocol_pb2 as pb

log = logging.getLogger(__name__)
SYSTEMS: dict[str, str] = {d.pssh_system_id: d.name for d in REGISTRY}
KNOWN_NAMES = {
    "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed": "Widevine",
    "9a04f079-9840-4286-ab92-e65be0885f95": "PlayReady",
    "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b": "W3C Common PSSH (Clear Key)",
    "94ce86fb-07ff-4f43-adb8-93d2fa968ca2": "FairPlay",
    "e2719d58-a985-b3c9-781a-b030af78d30e": "DASH-IF Clear Key",
}


def _data_view(system: str | None, data: bytes) -> Any:
    if not data:
        return None
    try:
        if system == "widevine":
            return {"WidevinePsshData": view(pb.WidevinePsshData.FromString(data))}
        if system == "playready":
            header = wrmheader.parse_wrmheader(wrmheader.parse_pro(data))
            from license_server.inspect.playready import header_view

            return {"PlayReadyObject": {"wrmheader": header_view(header)}}
    except Exception:
        log.debug("pssh data of %s does not decode", system)
    try:
        return {"text": data.decode("utf-8")} if data.isascii() else {"hex": data.hex()}
    except UnicodeDecodeError:
        return {"hex": data.hex()}


def parse_box(data: bytes, offset: int) -> tuple[dict[str, Any], int]:
    """One ``pssh`` box at ``offset``: its fields and where the next box starts."""
    if len(data) - offset < 32:
        raise NotMine("too short for a pssh box")
    size, kind = struct.unpack_from(">I4s", data, offset)
    if kind != b"pssh" or size < 32 or offset + size > len(data):
        raise NotMine("not a pssh box")
    version, flags = data[offset + 8], int.from_bytes(data[offset + 9:offset + 12], "big")
    if version > 1:
        raise NotMine(f"pssh version {version}")
    system_id = str(uuid.UUID(bytes=data[offset + 12:offset + 28]))
    at, end = offset + 28, offset + size
    kids: list[str] = []
    if version == 1:
        (count,) = struct.unpack_from(">I", data, at)
        at += 4
        if at + 16 * count > end:
            raise NotMine("pssh KID count overruns the box")
        kids = [data[at + 16 * i:at + 16 * (i + 1)].hex() for i in range(count)]
        at += 16 * count
    if at + 4 > end:
        raise NotMine("pssh data size is missing")
    (data_size,) = struct.unpack_from(">I", data, at)
    if at + 4 + data_size != end:
        raise NotMine("pssh data size does not match the box size")
    payload = data[at + 4:end]
    system = SYSTEMS.get(system_id)
    box = {"size": size, "version": version, "flags": flags, "system_id": system_id,
           "system": KNOWN_NAMES.get(system_id, "unknown system"), "dialect": system, "key_ids": kids,
           "data_size": data_size, "data": _data_view(system, payload)}
    return box, end


def decode(data: bytes, context: Context) -> Decoded:
    boxes, offset = [], 0
    while offset < len(data):
        box, offset = parse_box(data, offset)
        boxes.append(box)
    names = ", ".join(b["system"] for b in boxes)
    dialects = {b["dialect"] for b in boxes}
    return Decoded("pssh", f"{len(boxes)} PSSH box{'es' * (len(boxes) != 1)}: {names}", {"boxes": boxes},
                   dialect=dialects.pop() if len(dialects) == 1 else None)
