"""W3C EME Clear Key messages (sans-I/O): JSON bytes in, typed messages out, and back.

Wire formats (W3C Encrypted Media Extensions, "Clear Key" key system):

License request, produced by the browser's Clear Key CDM::

    {"kids": ["<base64url KID>", ...], "type": "temporary" | "persistent-license"}

License, the JSON Web Key set the CDM accepts in ``MediaKeySession.update()``::

    {"keys": [{"kty": "oct", "kid": "<base64url>", "k": "<base64url>"}, ...],
     "type": "temporary" | "persistent-license"}

License release (a persistent session removed by the application), and our
acknowledgement, which lists the key ids whose release was recorded::

    {"kids": ["<base64url KID>", ...]}          (no "type" member)

All base64url values are the URL-safe alphabet **without** ``=`` padding
(RFC 7515 section 2 / RFC 4648 section 5); anything else is refused. Key ids
are exactly 16 bytes. Unknown extra members are ignored, as JSON consumers
usually do; wrong types of the known members are refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from license_server.core.model import Grant, LicenseChallenge, LicenseKind, RequestKind
from license_server.errors import DrmError, ErrorCode, malformed

SYSTEM = "clearkey"
MAX_MESSAGE_BYTES = 64 * 1024
MAX_KIDS = 64
KID_BYTES = 16
COMMON_PSSH_SYSTEM_ID = "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
DASHIF_CLEARKEY_SCHEME = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e"

_B64URL = re.compile(r"[A-Za-z0-9_-]*\Z")


class SessionType(str, Enum):
    """The EME session types a Clear Key license request may name."""

    TEMPORARY = "temporary"
    PERSISTENT_LICENSE = "persistent-license"

    @property
    def license_kind(self) -> LicenseKind:
        return LicenseKind.PERSISTENT if self is SessionType.PERSISTENT_LICENSE else LicenseKind.TEMPORARY


@dataclass(frozen=True)
class LicenseRequest:
    """``{"kids": [...], "type": ...}``: the CDM asks for the keys of these ids."""

    kids: tuple[bytes, ...]
    session_type: SessionType


@dataclass(frozen=True)
class ReleaseRequest:
    """``{"kids": [...]}``: the application released a persistent session's keys."""

    kids: tuple[bytes, ...]


Message = LicenseRequest | ReleaseRequest


# ------------------------------------------------------------------ base64url


def b64url_encode(data: bytes) -> str:
    """base64url without padding, as every Clear Key value must be."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url decoding: URL-safe alphabet, no padding, canonical trailing bits.

    Raises :class:`ValueError` with a message naming the problem.
    """
    if "=" in text:
        raise ValueError("base64url values must not be padded with '='")
    if not _B64URL.match(text):
        raise ValueError("not base64url (only A-Z a-z 0-9 - _ are allowed; '+' and '/' are plain base64)")
    if len(text) % 4 == 1:
        raise ValueError("base64url value has an impossible length")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the checks above catch these
        raise ValueError(f"not base64url: {exc}") from exc
    if b64url_encode(data) != text:
        raise ValueError("base64url value is not canonical (non-zero trailing bits)")
    return data


# ------------------------------------------------------------------- parsing


def parse_message(body: bytes) -> Message:
    """Parse a request body into a :class:`LicenseRequest` or a :class:`ReleaseRequest`.

    A body with a ``type`` member is a license request; one without is a release.
    Raises ``DrmError``: MALFORMED_CHALLENGE for bad JSON, members, base64url or
    KID lengths; UNSUPPORTED_REQUEST for a session type other than the two above;
    CHALLENGE_TOO_LARGE for bodies or KID lists over the limits.
    """
    if len(body) > MAX_MESSAGE_BYTES:
        raise DrmError(ErrorCode.CHALLENGE_TOO_LARGE, f"body larger than {MAX_MESSAGE_BYTES} bytes")
    doc = _load_json(body)
    kids = _parse_kids(doc)
    if "type" not in doc:
        return ReleaseRequest(kids)
    kind = doc["type"]
    if not isinstance(kind, str):
        raise malformed('"type" must be a string')
    try:
        session_type = SessionType(kind)
    except ValueError:
        raise DrmError(
            ErrorCode.UNSUPPORTED_REQUEST,
            f'session type {kind[:40]!r} is not supported (use "temporary" or "persistent-license")',
        ) from None
    return LicenseRequest(kids, session_type)


def _load_json(body: bytes) -> dict[str, Any]:
    if not body:
        raise malformed("empty body: expected a Clear Key JSON message")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed("the body is not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise malformed("the body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise malformed("the body must be a JSON object")
    return doc


def _parse_kids(doc: dict[str, Any]) -> tuple[bytes, ...]:
    kids = doc.get("kids")
    if not isinstance(kids, list):
        raise malformed('"kids" must be a JSON array of base64url key ids')
    if not kids:
        raise malformed('"kids" is empty')
    if len(kids) > MAX_KIDS:
        raise DrmError(ErrorCode.CHALLENGE_TOO_LARGE, f"more than {MAX_KIDS} key ids in one request")
    result: list[bytes] = []
    for index, kid in enumerate(kids):
        if not isinstance(kid, str):
            raise malformed(f'"kids"[{index}] must be a string')
        try:
            raw = b64url_decode(kid)
        except ValueError as exc:
            raise malformed(f'"kids"[{index}]: {exc}') from None
        if len(raw) != KID_BYTES:
            raise malformed(f'"kids"[{index}] is {len(raw)} bytes; a key id is {KID_BYTES} bytes')
        if raw not in result:
            result.append(raw)
    return tuple(result)


def to_challenge(message: LicenseRequest, *, request_time: int) -> LicenseChallenge:
    """The neutral challenge of a license request.

    Clear Key carries no nonce and no device identity: the challenge has no
    request id (nothing to detect a replay by) and the caller supplies the
    server time.
    """
    return LicenseChallenge(
        system=SYSTEM,
        kind=RequestKind.NEW,
        license_kind=message.session_type.license_kind,
        content_id=None,
        key_ids=message.kids,
        request_id=None,
        request_time=request_time,
        device=None,
    )


# ------------------------------------------------------------------ building


def build_license(grant: Grant, session_type: SessionType) -> bytes:
    """The JWK set for a grant, in the grant's key order."""
    doc = {
        "keys": [{"kty": "oct", "kid": b64url_encode(key.kid), "k": b64url_encode(key.key)} for key in grant.keys],
        "type": session_type.value,
    }
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def build_release_ack(kids: tuple[bytes, ...]) -> bytes:
    """The acknowledgement of a release: the key ids whose release was recorded."""
    return json.dumps({"kids": [b64url_encode(kid) for kid in kids]}, separators=(",", ":")).encode("utf-8")


def build_license_request(kids: list[bytes], session_type: SessionType = SessionType.TEMPORARY) -> bytes:
    """What a Clear Key CDM sends (used by tests and by clients of this codec)."""
    return json.dumps({"kids": [b64url_encode(k) for k in kids], "type": session_type.value}).encode("utf-8")


def build_release(kids: list[bytes]) -> bytes:
    """A release message for ``kids`` (no ``type`` member)."""
    return json.dumps({"kids": [b64url_encode(k) for k in kids]}).encode("utf-8")


def parse_license(body: bytes) -> dict[bytes, bytes]:
    """Client side: the KID -> key map of a JWK set; raises ``ValueError`` if malformed."""
    doc = json.loads(body.decode("utf-8"))
    keys: dict[bytes, bytes] = {}
    for jwk in doc["keys"]:
        if jwk.get("kty") != "oct":
            raise ValueError(f"unexpected key type {jwk.get('kty')!r}")
        keys[b64url_decode(jwk["kid"])] = b64url_decode(jwk["k"])
    return keys
