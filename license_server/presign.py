"""Presigned media URLs: sign and verify, with no I/O and no clock reads.

A media URL is ``/media/<content_id>/<scheme>/<relative path>?exp=<unix>&sig=<sig>``
where ``sig`` is the unpadded base64url HMAC-SHA256, under the server's URL
signing secret, of the canonical string::

    "GET\\n" + <decoded path> + "\\n" + <exp>

The signature covers the exact path and the expiry, so neither can be changed
without the secret; verification compares in constant time
(:func:`license_server.crypto.hmac_sha256_verify`). The caller passes ``now``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import quote

from license_server import crypto
from license_server.errors import DrmError, ErrorCode

SECRET_BYTES = 32
DEFAULT_TTL = 3600  # seconds a presigned URL stays valid
MAX_SIG_CHARS = 64  # 32-byte MAC in base64url is 43 characters


@dataclass(frozen=True)
class SignedUrl:
    path: str  # decoded path, e.g. /media/demo-movie/cenc/sd/seg_1.m4s
    expires_at: int
    signature: str

    @property
    def url(self) -> str:
        """The relative URL to hand out (path percent-encoded, query appended)."""
        return f"{quote(self.path, safe='/')}?exp={self.expires_at}&sig={self.signature}"


def _canonical(path: str, expires_at: int) -> bytes:
    return f"GET\n{path}\n{expires_at}".encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if len(text) > MAX_SIG_CHARS or "=" in text:
        raise ValueError("bad signature encoding")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, path: str, expires_at: int) -> SignedUrl:
    """Sign ``path`` (decoded, starting with ``/``) until ``expires_at``."""
    if not path.startswith("/"):
        raise ValueError("path must be absolute")
    mac = crypto.hmac_sha256(secret, _canonical(path, expires_at))
    return SignedUrl(path, expires_at, _b64url(mac))


def verify(secret: bytes, path: str, exp: str | None, sig: str | None, *, now: int) -> int:
    """Check a presented URL; return its expiry or raise a :class:`DrmError`.

    The signature is checked before the expiry, so an attacker learns nothing
    about expiry handling without a valid signature: missing or malformed
    parameters and a wrong MAC give ``URL_SIGNATURE_INVALID``; a valid MAC
    whose time is up gives ``URL_EXPIRED``.
    """
    if not exp or not sig or not (exp.isascii() and exp.isdigit()) or len(exp) > 12:
        raise DrmError(ErrorCode.URL_SIGNATURE_INVALID, "the URL needs exp and sig query parameters")
    expires_at = int(exp)
    try:
        tag = _unb64url(sig)
    except (ValueError, binascii.Error) as exc:
        raise DrmError(ErrorCode.URL_SIGNATURE_INVALID) from exc
    try:
        crypto.hmac_sha256_verify(secret, _canonical(path, expires_at), tag)
    except crypto.CryptoError as exc:
        raise DrmError(ErrorCode.URL_SIGNATURE_INVALID) from exc
    if now >= expires_at:
        raise DrmError(ErrorCode.URL_EXPIRED, f"the URL expired {now - expires_at} s ago")
    return expires_at
