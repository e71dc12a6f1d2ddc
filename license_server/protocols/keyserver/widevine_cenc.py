"""The Widevine common-encryption key API, as Shaka Packager speaks it (sans-I/O).

Request body: the protobuf-JSON form of ``SignedModularDrmRequest``::

    {"request": base64(JSON CommonEncryptionRequest), "signature": base64, "signer": "widevine_test"}

``CommonEncryptionRequest`` (proto field names; the parser also takes the
lowerCamelCase JSON names): ``content_id`` (bytes), ``policy``, ``tracks``
[{``type``: SD | HD | UHD1 | UHD2 | AUDIO}], ``drm_types`` [WIDEVINE],
``first_crypto_period_index``, ``crypto_period_count`` (default 1),
``crypto_period_seconds``, ``protection_scheme`` (CENC | CBCS | CBC1 | CENS, or
the fourcc number), ``pssh_data`` (in lieu of ``content_id``).

Answer: ``{"response": base64(JSON CommonEncryptionResponse)}`` with ``status``
(OK or an error name), ``content_id`` and ``tracks`` [{``type``, ``key_id``,
``key``, ``pssh`` [{``drm_type``: WIDEVINE, ``data``}], ``crypto_period_index``}],
one per track and period, ordered by period. Errors keep that shape and add
our ``{"error": {"code", "message"}}`` beside ``response``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from license_server.errors import DrmError, ErrorCode
from license_server.protocols.widevine import license_protocol_pb2

pb: Any = license_protocol_pb2  # generated protobuf module (no type stubs)
MAX_BODY_BYTES = 64 * 1024
MAX_PERIODS = 100
TRACK_TYPES = ("SD", "HD", "UHD1", "UHD2", "AUDIO")
SCHEMES = {"UNSPECIFIED": 0, "CENC": 0x63656E63, "CBC1": 0x63626331, "CENS": 0x63656E73, "CBCS": 0x63626373}
# Our stable codes -> the API's CommonEncryptionResponse.Status names.
STATUS_OF = {
    ErrorCode.KEYSERVER_SIGNATURE_INVALID: "SIGNATURE_FAILED",
    ErrorCode.KEYSERVER_SIGNER_UNKNOWN: "ACCESS_DENIED",
    ErrorCode.KEYSERVER_CONTENT_ID_MISSING: "CONTENT_ID_MISSING",
    ErrorCode.KEYSERVER_TRACK_TYPE_UNKNOWN: "TRACK_TYPE_UNKNOWN",
    ErrorCode.KEYSERVER_CONTENT_RESERVED: "ACCESS_DENIED",
}


@dataclass(frozen=True)
class SignedRequest:
    request: bytes  # the signed bytes: the request's JSON text
    signature: bytes
    signer: str | None


@dataclass(frozen=True)
class CencRequest:
    content_id: bytes
    tracks: tuple[str, ...]
    protection_scheme: int
    first_crypto_period_index: int | None = None
    crypto_period_count: int = 1
    crypto_period_seconds: int | None = None

    @property
    def periods(self) -> tuple[int | None, ...]:
        """The crypto period indexes asked for; ``(None,)`` without key rotation."""
        if self.first_crypto_period_index is None:
            return (None,)
        return tuple(range(self.first_crypto_period_index, self.first_crypto_period_index + self.crypto_period_count))


@dataclass(frozen=True)
class ResponseTrack:
    type: str
    key_id: bytes
    key: bytes
    pssh_data: bytes
    crypto_period_index: int | None = None


def _bad(message: str, code: ErrorCode = ErrorCode.KEYSERVER_MALFORMED_REQUEST) -> DrmError:
    return DrmError(code, message)


def b64decode(value: Any, what: str) -> bytes:
    """Protobuf-JSON bytes: standard or URL-safe base64, padding optional."""
    if not isinstance(value, str):
        raise _bad(f"{what} must be a base64 string")
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad(f"{what} is not base64") from exc


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(f"{what} is not JSON") from exc
    if not isinstance(doc, dict):
        raise _bad(f"{what} is not a JSON object")
    return doc


def _field(doc: dict[str, Any], name: str) -> Any:
    camel = name.split("_")[0] + "".join(part.title() for part in name.split("_")[1:])
    return doc.get(name, doc.get(camel))


def _uint(doc: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = _field(doc, name)
    if value is None:
        return default
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
        raise _bad(f"{name} must be an unsigned 32-bit integer")
    return value


def parse_signed_request(body: bytes) -> SignedRequest:
    doc = _json_object(body, "the body")
    signer = _field(doc, "signer")
    if signer is not None and not isinstance(signer, str):
        raise _bad("signer must be a string")
    if _field(doc, "request") is None:
        raise _bad("the body has no request")
    signature = _field(doc, "signature")
    return SignedRequest(b64decode(_field(doc, "request"), "request"),
                         b64decode(signature, "signature") if signature is not None else b"", signer)


def parse_request(raw: bytes) -> CencRequest:
    doc = _json_object(raw, "the request")
    content_id = _field(doc, "content_id")
    cid = b64decode(content_id, "content_id") if content_id is not None else b""
    if not cid and _field(doc, "pssh_data") is not None:
        header = pb.WidevinePsshData()
        try:
            header.ParseFromString(b64decode(_field(doc, "pssh_data"), "pssh_data"))
        except Exception as exc:
            raise _bad("pssh_data is not WidevinePsshData") from exc
        cid = header.content_id
    if not cid:
        raise _bad("the request names no content_id", ErrorCode.KEYSERVER_CONTENT_ID_MISSING)
    tracks = _field(doc, "tracks")
    if not isinstance(tracks, list) or not tracks:
        raise _bad("the request lists no tracks", ErrorCode.KEYSERVER_TRACK_TYPE_UNKNOWN)
    types: list[str] = []
    for track in tracks:
        kind = track.get("type") if isinstance(track, dict) else None
        if kind not in TRACK_TYPES:
            raise _bad(f"unknown track type {str(kind)[:20]!r}", ErrorCode.KEYSERVER_TRACK_TYPE_UNKNOWN)
        if kind not in types:
            types.append(kind)
    for drm in _field(doc, "drm_types") or []:
        if drm not in ("WIDEVINE", 0):
            raise _bad(f"unsupported drm type {str(drm)[:20]!r} (WIDEVINE only)")
    scheme = _field(doc, "protection_scheme")
    if isinstance(scheme, str):
        if scheme not in SCHEMES:
            raise _bad(f"unknown protection_scheme {scheme[:20]!r}")
        scheme = SCHEMES[scheme]
    elif scheme is not None and scheme not in SCHEMES.values():
        raise _bad("unknown protection_scheme")
    first = _uint(doc, "first_crypto_period_index")
    count = _uint(doc, "crypto_period_count", 1) or 0
    if first is not None and not 1 <= count <= MAX_PERIODS:
        raise _bad(f"crypto_period_count must be 1 to {MAX_PERIODS}")
    return CencRequest(cid, tuple(types), int(scheme or 0), first, count if first is not None else 1,
                       _uint(doc, "crypto_period_seconds"))


def build_response(content_id: bytes, tracks: list[ResponseTrack]) -> bytes:
    """The signed-response JSON for an OK answer."""
    answer: dict[str, Any] = {"status": "OK", "content_id": _b64(content_id), "drm": [
        {"type": "WIDEVINE", "system_id": "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"}], "tracks": []}
    for track in tracks:
        entry: dict[str, Any] = {"type": track.type, "key_id": _b64(track.key_id), "key": _b64(track.key),
                                 "pssh": [{"drm_type": "WIDEVINE", "data": _b64(track.pssh_data)}]}
        if track.crypto_period_index is not None:
            entry["crypto_period_index"] = track.crypto_period_index
        answer["tracks"].append(entry)
    return json.dumps({"response": _b64(json.dumps(answer).encode())}).encode()


def build_error(error: DrmError) -> bytes:
    """The API's error answer (``status`` by name) with our stable code beside it."""
    status = STATUS_OF.get(error.code, "MALFORMED_REQUEST" if error.status < 500 else "INTERNAL_ERROR")
    return json.dumps({"response": _b64(json.dumps({"status": status}).encode()),
                       "error": {"code": error.code.value, "message": error.message}}).encode()


def pssh_data(content_id: bytes | None, key_ids: list[bytes], protection_scheme: int) -> bytes:
    """``WidevinePsshData`` for a period: its key ids, the content id, the scheme."""
    header = pb.WidevinePsshData(key_ids=key_ids)
    if content_id:
        header.content_id = content_id
    if protection_scheme:
        header.protection_scheme = protection_scheme
    return bytes(header.SerializeToString())


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
