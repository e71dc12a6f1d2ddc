"""FairPlay-style SPC and CKC: containers and TLLV blocks, tags by their public names."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from license_server.errors import DrmError
from license_server.inspect.model import Context, Decoded, NotMine, secret
from license_server.inspect.values import plain
from license_server.inspect.widevine import certificate_chain
from license_server.protocols.fairplay import ckc, fields, spc, tllv
from license_server.protocols.fairplay.tllv import Tag

_SPC_HEAD = struct.Struct(">II16s256s20sI")
_CKC_HEAD = struct.Struct(">II16sI")
# Blocks whose value is session secret material: shown as their size only.
SECRET_TAGS = {Tag.SESSION_KEY_R1, Tag.SESSION_KEY_R1_INTEGRITY, Tag.R1, Tag.ENCRYPTED_CK, Tag.EMU_CONTENT_KEY}


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _chain(value: bytes) -> Any:
    try:
        return certificate_chain(value)
    except NotMine:
        return f"{len(value)} bytes (not a certificate chain)"


VALUE_VIEWS: dict[int, Callable[[bytes], Any]] = {
    Tag.ASSET_ID: _text,
    Tag.CAPABILITIES: lambda v: plain(fields.Capabilities.decode(v)),
    Tag.MEDIA_PLAYBACK_STATE: lambda v: plain(fields.MediaPlaybackState.decode(v)),
    Tag.STREAMING_INDICATOR: lambda v: int.from_bytes(v, "big"),
    Tag.OFFLINE_SYNC: lambda v: plain(fields.OfflineSync.decode(v)),
    Tag.KEY_DURATION: lambda v: plain(fields.KeyDuration.decode(v)),
    Tag.OFFLINE_KEY: lambda v: plain(fields.OfflineKey.decode(v)),
    Tag.HDCP_INFORMATION: lambda v: fields.decode_hdcp(v).name,
    Tag.SECURITY_LEVEL: lambda v: fields.decode_security_level(v).name,
    Tag.EMU_REQUEST_INFO: lambda v: fields.decode_request_info(v).value,
    Tag.EMU_ATTESTATION: lambda v: plain(fields.decode_evidence(v)),
    Tag.EMU_CERTIFICATE_CHAIN: _chain,
    Tag.EMU_DESTRUCTION_RECORD: lambda v: plain(fields.DestructionRecord.decode(v)),
}


def blocks_view(payload: bytes, what: str) -> list[dict[str, Any]]:
    """Each TLLV block: tag (hex), public name (or ours, or unknown), size and decoded value."""
    out = []
    for block in tllv.decode(payload, what=what):
        name = block.name
        entry: dict[str, Any] = {"tag": f"0x{block.tag:016x}", "name": name, "length": len(block.value),
                                 "public": name in Tag.__members__ and Tag[name] not in tllv.OURS}
        if block.tag in SECRET_TAGS:
            entry["value"] = secret(block.value, "session secret")
        elif block.tag in VALUE_VIEWS:
            try:
                entry["value"] = VALUE_VIEWS[block.tag](block.value)
            except (DrmError, ValueError) as exc:
                entry["value"] = f"<does not decode: {exc}>"
        else:
            entry["value"] = block.value.hex() if len(block.value) <= 64 else f"{block.value[:32].hex()}..."
        out.append(entry)
    return out


def decode_spc(data: bytes, context: Context) -> Decoded:
    if len(data) <= _SPC_HEAD.size:
        raise NotMine("too short for an SPC")
    version, reserved, iv, wrapped, cert_hash, length = _SPC_HEAD.unpack_from(data)
    if version != spc.SPC_VERSION or reserved != 0 or length != len(data) - _SPC_HEAD.size or length % 16:
        raise NotMine("not an SPC container")
    out: dict[str, Any] = {"version": version, "iv": iv.hex(), "encrypted_spc_key": secret(wrapped, "RSA-OAEP wrapped"),
                           "certificate_hash": cert_hash.hex(), "payload_length": length}
    decoded = Decoded("fairplay.spc", "FairPlay-style SPC (server playback context)", out, dialect="fairplay")
    if not (context.fairplay_certificate and context.fairplay_key_pem):
        decoded.notes.append("the payload is encrypted to the application certificate; no key to open it here")
        return decoded
    try:
        _, plain_payload = spc.open_container(data, app_certificate=context.fairplay_certificate,
                                              app_key_pem=context.fairplay_key_pem)
        out["payload"] = blocks_view(plain_payload, "SPC payload")
    except DrmError as exc:
        decoded.notes.append(f"the payload does not open: {exc.message}")
        return decoded
    try:
        parsed = spc.parse_spc(data, app_certificate=context.fairplay_certificate, app_key_pem=context.fairplay_key_pem)
        decoded.challenge, decoded.extra = parsed.challenge, parsed
        decoded.summary += f" for asset {parsed.asset_id}"
    except DrmError as exc:
        decoded.notes.append(f"the server would refuse it as {exc.code.value}: {exc.message}")
    return decoded


def decode_ckc(data: bytes, context: Context) -> Decoded:
    if len(data) < _CKC_HEAD.size + 16:
        raise NotMine("too short for a CKC")
    version, reserved, iv, length = _CKC_HEAD.unpack_from(data)
    if version != ckc.CKC_VERSION or reserved != 0 or length != len(data) - _CKC_HEAD.size or length % 16:
        raise NotMine("not a CKC container")
    out = {"version": version, "iv": iv.hex(), "payload_length": length,
           "payload": secret(data[_CKC_HEAD.size:], "encrypted under the session's anti-replay key")}
    return Decoded("fairplay.ckc", "FairPlay-style CKC (content key context)", out, dialect="fairplay",
                   notes=["a CKC opens only with its SPC's session secrets (R1, seed); its TLLVs stay sealed"])
