"""FairPlay-style HTTP transport shapes, sans-I/O: how an SPC arrives and how a CKC goes back.

Transport shapes in (by Content-Type): raw ``application/octet-stream`` SPC bytes;
``application/x-www-form-urlencoded`` ``spc=<base64>`` (optional ``assetId``);
``application/json`` ``{"spc": "<base64>"}`` (optional ``assetId``); ``text/plain``
base64. Answer shape: the first recognised type of the Accept header
(application/json, application/xml or text/xml, text/plain, application/octet-stream),
else by request shape: JSON -> ``{"ckc": ...}``, form -> ``<ckc>...</ckc>``, raw or
text -> bare base64.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from enum import Enum
from urllib.parse import parse_qs

from license_server import jsonsafe
from license_server.errors import malformed

_B64_JUNK = re.compile(r"\s+")


class Shape(Enum):
    RAW = "raw"
    TEXT = "text"
    FORM = "form"
    JSON = "json"


class Answer(Enum):
    XML = "application/xml"
    BASE64 = "text/plain"
    JSON = "application/json"
    BINARY = "application/octet-stream"


_ACCEPT = {"application/json": Answer.JSON, "application/xml": Answer.XML, "text/xml": Answer.XML,
           "text/plain": Answer.BASE64, "application/octet-stream": Answer.BINARY}
_DEFAULT = {Shape.JSON: Answer.JSON, Shape.FORM: Answer.XML, Shape.RAW: Answer.BASE64, Shape.TEXT: Answer.BASE64}


def decode_b64(text: str, what: str) -> bytes:
    """Standard or URL-safe base64, padding optional; '+' turned into ' ' by forms is repaired."""
    cleaned = _B64_JUNK.sub("", text.replace(" ", "+")).replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        value = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise malformed(f"{what} is not base64") from exc
    if not value:
        raise malformed(f"{what} is empty")
    return value


def read_spc(body: bytes, content_type: str) -> tuple[bytes, str | None, Shape]:
    """The SPC bytes, the optional assetId of the transport, and the request shape."""
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            doc = jsonsafe.loads(body)
        except ValueError as exc:
            raise malformed("the JSON body does not parse") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("spc"), str):
            raise malformed('the JSON body needs {"spc": "<base64>"}')
        asset = doc.get("assetId")
        if asset is not None and not isinstance(asset, str):
            raise malformed("assetId must be a string")
        return decode_b64(doc["spc"], "spc"), asset, Shape.JSON
    if content_type == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("ascii"), keep_blank_values=True, max_num_fields=16)
        except (UnicodeDecodeError, ValueError) as exc:
            raise malformed("the form body does not parse") from exc
        if len(form.get("spc", [])) != 1:
            raise malformed("the form needs exactly one spc=<base64> field")
        assets = form.get("assetId", [])
        if len(assets) > 1:
            raise malformed("the form has more than one assetId")
        return decode_b64(form["spc"][0], "spc"), (assets[0] if assets else None), Shape.FORM
    if content_type == "text/plain":
        try:
            return decode_b64(body.decode("ascii"), "the text body"), None, Shape.TEXT
        except UnicodeDecodeError as exc:
            raise malformed("the text body is not base64") from exc
    return body, None, Shape.RAW


def answer_shape(shape: Shape, accept: str) -> Answer:
    """The first recognised media type of Accept (by q, then order), else the request's default."""
    ranked = []
    for position, item in enumerate(accept.split(",")):
        media, *params = [part.strip() for part in item.split(";")]
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        if media.lower() in _ACCEPT and quality > 0:
            ranked.append((-quality, position, _ACCEPT[media.lower()]))
    return min(ranked)[2] if ranked else _DEFAULT[shape]


def encode_answer(ckc_bytes: bytes, answer: Answer) -> tuple[bytes, str]:
    """The CKC in the answer shape: (body, content type)."""
    text = base64.b64encode(ckc_bytes).decode("ascii")
    if answer is Answer.JSON:
        return json.dumps({"ckc": text}).encode("ascii"), "application/json"
    if answer is Answer.XML:
        return f"<ckc>{text}</ckc>".encode("ascii"), "application/xml"
    if answer is Answer.BINARY:
        return ckc_bytes, "application/octet-stream"
    return text.encode("ascii"), "text/plain"
