"""Presigned media URLs: path, expiry, signature and, with the server's secret, whether it verifies."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from license_server import presign
from license_server.errors import DrmError
from license_server.inspect.model import Context, Decoded, NotMine

MEDIA_PREFIX = "/media/"


def decode(text: str, context: Context, now: int) -> Decoded:
    if "\n" in text or " " in text or len(text) > 4096:
        raise NotMine("not a URL")
    parts = urlsplit(text)
    path = unquote(parts.path)
    query = parse_qs(parts.query)
    if not path.startswith(MEDIA_PREFIX) or "sig" not in query or "exp" not in query:
        raise NotMine("not a presigned media URL")
    exp, sig = query["exp"][0], query["sig"][0]
    segments = path[len(MEDIA_PREFIX):].split("/")
    fields: dict[str, Any] = {"path": path, "content_id": segments[0] if segments else None,
              "scheme": segments[1] if len(segments) > 1 else None, "file": "/".join(segments[2:]) or None,
              "exp": int(exp) if exp.isdigit() else exp, "sig": sig, "host": parts.netloc or None}
    if isinstance(fields["exp"], int):
        fields["expires_in_seconds"] = fields["exp"] - now
    if context.url_secret is None:
        fields["verification"] = {"verified": None, "reason": "the URL signing secret is not available here"}
    else:
        try:
            presign.verify(context.url_secret, path, exp, sig, now=now)
            fields["verification"] = {"verified": True, "code": None, "reason": "signature valid, not expired"}
        except DrmError as exc:
            fields["verification"] = {"verified": False, "code": exc.code.value, "reason": exc.message}
    return Decoded("presigned_url", f"presigned media URL for {path}", fields, dialect=None)
