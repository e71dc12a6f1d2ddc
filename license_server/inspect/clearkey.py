"""W3C Clear Key JSON: license request, release, answer (a JWK set, keys shown by design)."""

from __future__ import annotations

from typing import Any

from license_server.errors import DrmError
from license_server.inspect.model import Context, Decoded, NotMine
from license_server.protocols import clearkey


def _kid(text: Any) -> str:
    try:
        return clearkey.b64url_decode(str(text)).hex()
    except ValueError as exc:
        return f"<not base64url: {exc}>"


def decode(doc: dict[str, Any], raw: bytes, context: Context, now: int) -> Decoded:
    if isinstance(doc.get("keys"), list):
        keys = []
        for jwk in doc["keys"]:
            if not isinstance(jwk, dict):
                raise NotMine("keys must be JWK objects")
            keys.append({"kty": jwk.get("kty"), "kid": jwk.get("kid"), "kid_hex": _kid(jwk.get("kid")),
                         "k": jwk.get("k"), "k_hex": _kid(jwk.get("k"))})
        return Decoded("clearkey.license", f"Clear Key answer: a JWK set of {len(keys)} key(s)",
                       {"keys": keys, "type": doc.get("type")}, dialect="clearkey",
                       notes=["Clear Key answers carry plain content keys by design; they are shown"])
    if not isinstance(doc.get("kids"), list):
        raise NotMine("no kids or keys member")
    try:
        message = clearkey.parse_message(raw)
    except DrmError as exc:
        return Decoded("clearkey.request", "Clear Key message (the server would refuse it)",
                       {"kids": [_kid(k) for k in doc["kids"]], "type": doc.get("type")}, dialect="clearkey",
                       notes=[f"{exc.code.value}: {exc.message}"])
    kids = [k.hex() for k in message.kids]
    if isinstance(message, clearkey.ReleaseRequest):
        return Decoded("clearkey.release", f"Clear Key release (or its acknowledgement) of {len(kids)} key id(s)",
                       {"kids": kids}, dialect="clearkey")
    decoded = Decoded("clearkey.request", f"Clear Key license request ({message.session_type.value})",
                      {"kids": kids, "type": message.session_type.value}, dialect="clearkey")
    decoded.challenge = clearkey.to_challenge(message, request_time=now)
    decoded.extra = message
    return decoded
