"""XMR licenses object by object (real names and type numbers); content keys are never shown."""

from __future__ import annotations

import struct
from typing import Any

from license_server.errors import DrmError
from license_server.inspect.model import Context, Decoded, NotMine, secret
from license_server.inspect.values import plain
from license_server.protocols.playready import xmr
from license_server.protocols.playready.xmr import Obj

CIPHER_TYPES = {xmr.CIPHER_ECC256: "ECC-256 (ElGamal to the device key)"}
KEY_NOTE = "content keys (and their integrity keys) are ElGamal-encrypted to the device; their values are never shown"


def _payload(kind: int, data: bytes) -> Any:
    """A JSON view of one leaf object's payload."""
    try:
        if kind == Obj.CONTENT_KEY:
            key_type, cipher, length = struct.unpack_from(">HHH", data, 16)
            return {"key_id": xmr.kid_le(data[:16]).hex(),
                    "key_type": f"{xmr.KEY_TYPE_NAMES.get(key_type, 'unknown')} ({key_type})",
                    "cipher_type": f"{CIPHER_TYPES.get(cipher, 'unknown')} ({cipher})",
                    "encrypted_key": secret(data[22:22 + length], "encrypted content key + integrity key")}
        if kind == Obj.SIGNATURE:
            sig_type, length = struct.unpack_from(">HH", data)
            return {"signature_type": "AES-OMAC1 (1)" if sig_type == xmr.SIGNATURE_AES_OMAC1 else sig_type,
                    "length": length}
        if kind == Obj.ECC_DEVICE_KEY:
            curve, length = struct.unpack_from(">HH", data)
            return {"curve": "ECC-256 (1)" if curve == xmr.CURVE_ECC256 else curve, "key": data[4:4 + length].hex()}
        if kind == Obj.SETTINGS:
            (rights,) = struct.unpack(">H", data)
            return {"rights": rights, "cannot_persist": bool(rights & xmr.CANNOT_PERSIST)}
        if kind == Obj.EXPIRATION:
            begin, end = struct.unpack(">II", data)
            return {"begin": begin, "end": None if end == xmr.OPEN_END else end}
        if kind == Obj.OUTPUT_PROTECTION:
            return dict(zip(("compressed_digital_video", "uncompressed_digital_video", "analog_video",
                             "compressed_digital_audio", "uncompressed_digital_audio"), struct.unpack(">5H", data)))
        if kind == Obj.SECURITY_LEVEL:
            return struct.unpack(">H", data)[0]
        if kind in (Obj.ISSUE_DATE, Obj.EXPIRATION_AFTER_FIRST_PLAY, Obj.REMOVAL_DATE):
            return struct.unpack(">I", data)[0]
        if kind == Obj.POLICY_METADATA:
            return {"metadata_type": data[:16].hex(), "data": data[16:].decode("ascii", "replace")}
    except struct.error:
        return f"<{len(data)} bytes; wrong size>"
    return None if not data else f"<{len(data)} bytes>"


def objects(data: bytes, start: int, end: int) -> list[dict[str, Any]]:
    """Every object in ``data[start:end]``, containers recursively."""
    out, offset = [], start
    while offset + 8 <= end:
        flags, kind, length = struct.unpack_from(">HHI", data, offset)
        if length < 8 or offset + length > end:
            out.append({"error": f"object at offset {offset} has a bad length"})
            break
        name = Obj(kind).name if kind in Obj._value2member_map_ else "UNKNOWN"
        entry: dict[str, Any] = {"type": f"0x{kind:04X}", "name": name,
                                 "must_understand": bool(flags & xmr.MUST_UNDERSTAND)}
        if flags & xmr.CONTAINER:
            entry["objects"] = objects(data, offset + 8, offset + length)
        else:
            entry["value"] = _payload(kind, data[offset + 8:offset + length])
        out.append(entry)
        offset += length
    return out


def xmr_view(data: bytes) -> dict[str, Any]:
    parsed = xmr.decode(data)
    lic = plain(parsed.license)
    for entry, key in zip(lic["keys"], parsed.license.keys):
        entry["encrypted_key"] = secret(key.encrypted_key, "ElGamal-encrypted content key")
    return {"rights_id": parsed.license.rights_id.hex(), "license_id": parsed.license.license_id,
            "xmr_version": struct.unpack_from(">I", data, 4)[0], **lic,
            "objects": objects(data, 24, len(data)),
            "signature": f"AES-128-CMAC (AES-OMAC1) under the integrity key, {len(parsed.signature)} bytes"}


def decode(data: bytes, context: Context) -> Decoded:
    if data[:4] != xmr.MAGIC:
        raise NotMine("no XMR magic")
    try:
        view = xmr_view(data)
    except DrmError as exc:
        raise NotMine(f"XMR magic, but {exc.message}") from exc
    return Decoded("playready.xmr", f"PlayReady XMR license {view['rights_id']}", view, dialect="playready",
                   notes=[KEY_NOTE])
