"""The inspector: recognise and decode any of our DRM messages, sans-I/O.

:func:`inspect` takes bytes (raw, or base64 / hex text of them, or a text
message such as SOAP XML, a CPIX document, Clear Key JSON, a JWT or a presigned URL) and returns
the stable JSON document described in docs/console.md. Input no decoder
recognises gives ``"not a recognised DRM message"``; no input raises.

Decoders live one per format in this package and parse through the project's
own codecs, so they follow the wire formats when those change. Content keys and
MAC keys are never shown, except in Clear Key answers, which carry plain keys
by design.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

from license_server.errors import DrmError
from license_server.inspect import (
    clearkey,
    cpix,
    fairplay,
    playready,
    playready_bcert,
    pssh,
    token,
    url,
    widevine,
)
from license_server.inspect.model import (
    NOT_RECOGNISED,
    Context,
    Decoded,
    NotMine,
    unrecognised,
)

__all__ = ["MAX_INPUT_BYTES", "NOT_RECOGNISED", "Context", "Decoded", "decode", "inspect"]

log = logging.getLogger(__name__)
MAX_INPUT_BYTES = 1024 * 1024
_HEX = re.compile(r"(0x)?[0-9a-fA-F\s:]+\Z")
_B64 = re.compile(r"[A-Za-z0-9+/_\-\s]+={0,2}\s*\Z")
_CKC_XML = re.compile(r"\s*<ckc>\s*([A-Za-z0-9+/=\s]+)\s*</ckc>\s*\Z")

BinaryDecoder = Callable[[bytes, Context], Decoded]
BINARY: tuple[BinaryDecoder, ...] = (pssh.decode, playready.decode_xmr, playready_bcert.decode, playready.decode_pro,
                                     fairplay.decode_spc, fairplay.decode_ckc, widevine.decode)


def _text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    stripped = text.strip().lstrip("\ufeff")
    if not stripped or any(ord(c) < 32 and c not in "\r\n\t" for c in stripped):
        return None
    return stripped


def _unbase64(text: str) -> bytes | None:
    cleaned = re.sub(r"\s+", "", text).replace("-", "+").replace("_", "/")
    cleaned = cleaned.rstrip("=")
    if len(cleaned) % 4 == 1:
        return None
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True) or None
    except (binascii.Error, ValueError):
        return None


def _unhex(text: str) -> bytes | None:
    cleaned = re.sub(r"[\s:]", "", text)
    cleaned = cleaned[2:] if cleaned[:2].lower() == "0x" else cleaned
    if len(cleaned) % 2:
        return None
    try:
        return bytes.fromhex(cleaned) or None
    except ValueError:
        return None


def _decode_text(text: str, raw: bytes, context: Context, now: int) -> Decoded:
    if text.startswith("<"):
        match = _CKC_XML.match(text)
        if match:
            inner = _unbase64(match.group(1))
            if inner is None:
                raise NotMine("<ckc> does not hold base64")
            return fairplay.decode_ckc(inner, context)
        if "urn:dashif:org:cpix" in text[:4096]:
            return cpix.decode(raw, context)
        return playready.decode_xml(raw, context)
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise NotMine("not JSON") from exc
        if not isinstance(doc, dict):
            raise NotMine("not a JSON object")
        for name, decoder in (("spc", fairplay.decode_spc), ("ckc", fairplay.decode_ckc)):
            if isinstance(doc.get(name), str):
                inner = _unbase64(doc[name])
                if inner is None:
                    raise NotMine(f"{name} is not base64")
                return decoder(inner, context)
        return clearkey.decode(doc, text.encode("utf-8"), context, now)
    if text.count(".") == 2 and token.JWT.match(text):
        return token.decode(text, context, now)
    return url.decode(text, context, now)


def _candidates(data: bytes) -> Iterator[tuple[str, bytes, str | None]]:
    """(input encoding, bytes, text or None) in the order decoders should try them."""
    text = _text(data)
    if text is None:
        yield "raw", data, None
        return
    yield "text", data, text
    layers = []
    if _HEX.match(text):
        layers.append(("hex", _unhex(text)))
    if _B64.match(text):
        layers.append(("base64", _unbase64(text)))
    for encoding, decoded in layers:
        if decoded:
            inner_text = _text(decoded)
            yield encoding, decoded, inner_text
    yield "raw", data, None


def _attempt(decoder: Callable[..., Decoded], *args: Any) -> Decoded | None:
    try:
        return decoder(*args)
    except (NotMine, DrmError):
        return None
    except Exception:
        log.debug("inspector decoder %s failed", getattr(decoder, "__qualname__", decoder), exc_info=True)
        return None


def decode(data: bytes, context: Context | None = None, *, now: int = 0) -> tuple[str, Decoded | None]:
    """The input encoding and the first decoder's result (None: not recognised)."""
    context = context or Context()
    if not data or len(data) > MAX_INPUT_BYTES:
        return "raw", None
    for encoding, candidate, text in _candidates(data):
        found = None
        if text is not None:
            found = _attempt(_decode_text, text, candidate, context, now)
        if found is None and (text is None or encoding != "text"):
            for decoder in BINARY:
                found = _attempt(decoder, candidate, context)
                if found is not None:
                    break
        if found is not None:
            return encoding, found
    return ("text" if _text(data) is not None else "raw"), None


def inspect(data: bytes, context: Context | None = None, *, now: int = 0) -> dict[str, Any]:
    """The stable JSON document for ``data`` (see docs/console.md)."""
    encoding, found = decode(data, context, now=now)
    if found is None:
        reason = f"input larger than {MAX_INPUT_BYTES} bytes" if len(data) > MAX_INPUT_BYTES else None
        return unrecognised(encoding, reason)
    return found.as_json(encoding)
