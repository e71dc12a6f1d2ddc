"""FairPlay-style endpoints: ``GET /fairplay/certificate`` and ``POST /fairplay/license``.

Transport shapes in (by Content-Type): raw ``application/octet-stream`` SPC bytes;
``application/x-www-form-urlencoded`` ``spc=<base64>`` (optional ``assetId``);
``application/json`` ``{"spc": "<base64>"}`` (optional ``assetId``); ``text/plain``
base64. Answer shape: the first recognised type of the Accept header
(application/json, application/xml or text/xml, text/plain, application/octet-stream),
else by request shape: JSON -> ``{"ckc": ...}``, form -> ``<ckc>...</ckc>``, raw or
text -> bare base64. Errors: status, ``X-DRM-Error-Code`` and a small JSON body.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import Enum
from urllib.parse import parse_qs

from aiohttp import web

from license_server import jsonsafe
from license_server.core import invalidation
from license_server.core.model import Grant
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode, malformed
from license_server.http import KEYRING, SERVICE, access_of, error_renderer, read_body
from license_server.keyring import Keyring
from license_server.protocols.fairplay import ckc, fields, spc
from license_server.protocols.fairplay import policy as fp_policy
from license_server.protocols.widevine.trust import WidevineTrust

TRUST = web.AppKey("fairplay_trust", WidevineTrust)
MAX_BODY_BYTES = 128 * 1024  # base64 of the largest SPC, plus form or JSON framing
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


@error_renderer("fairplay")
def render_error(error: DrmError) -> web.Response:
    return web.json_response({"status": error.status, "code": error.code.value, "message": error.message},
                             status=error.status, headers={ERROR_CODE_HEADER: error.code.value})


def _keys(keyring: Keyring) -> tuple[bytes, bytes]:
    if not keyring.fairplay_certificate or not keyring.fairplay_key_pem:
        raise DrmError(ErrorCode.UNSUPPORTED_REQUEST, "keys/ has no FairPlay application certificate; "
                       "run `license-server keys init --dir <keys> --force`")
    return keyring.fairplay_certificate, keyring.fairplay_key_pem


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


def render(ckc_bytes: bytes, answer: Answer) -> web.Response:
    text = base64.b64encode(ckc_bytes).decode("ascii")
    if answer is Answer.JSON:
        return web.json_response({"ckc": text})
    if answer is Answer.XML:
        return web.Response(text=f"<ckc>{text}</ckc>", content_type="application/xml")
    if answer is Answer.BINARY:
        return web.Response(body=ckc_bytes, content_type="application/octet-stream")
    return web.Response(text=text, content_type="text/plain")


async def certificate(request: web.Request) -> web.Response:
    cert, _ = _keys(request.app[KEYRING])
    if request.query.get("format") == "base64":
        return web.Response(text=base64.b64encode(cert).decode("ascii"), content_type="text/plain")
    return web.Response(body=cert, content_type="application/octet-stream")


async def license_exchange(request: web.Request) -> web.Response:
    cert, key_pem = _keys(request.app[KEYRING])
    body = await read_body(request, MAX_BODY_BYTES)
    raw, form_asset, shape = read_spc(body, request.content_type)
    answer = answer_shape(shape, request.headers.get("Accept", ""))
    parsed = spc.parse_spc(raw, app_certificate=cert, app_key_pem=key_pem)
    if form_asset is not None and form_asset != parsed.asset_id:
        raise malformed(f"assetId {form_asset!r} does not match the SPC's asset id {parsed.asset_id!r}")
    if parsed.is_invalidation:
        return render(_invalidate(request, parsed), answer)
    overrides = fp_policy.overrides_for(request.query, license_kind=parsed.challenge.license_kind,
                                        audio_only=parsed.audio_only)
    offline_key = bool(parsed.capabilities.flags & fields.Capability.OFFLINE_KEY)

    def build(grant: Grant) -> tuple[bytes, dict[str, str]]:
        return ckc.build_ckc(grant, parsed.secrets, offline_key_supported=offline_key), {}

    answer_bytes = request.app[SERVICE].acquire(parsed.challenge, trust=request.app[TRUST], overrides=overrides,
                                                build=build, access=access_of(request))
    return render(answer_bytes, answer)


def _invalidate(request: web.Request, parsed: spc.ParsedSpc) -> bytes:
    record, sync = parsed.destruction, parsed.offline_sync
    assert sync is not None
    if record is None:
        raise malformed("an offline-sync SPC must carry the signed destruction record")
    if sorted(d.hex() for d in sync.deleted) != sorted(record.license_ids):
        raise malformed("the offline-sync deleted ids and the destruction record disagree")
    result = invalidation.invalidate(request.app[SERVICE], parsed.challenge, trust=request.app[TRUST],
                                     license_ids=record.license_ids, content_id=record.content_id,
                                     reason=f"secure invalidation: deleted on the device at {record.deleted_at}")
    ack = fields.InvalidationAck(result.released, result.not_found)
    return ckc.build_invalidation_ack(parsed.secrets, ack, sync)


def setup(app: web.Application) -> None:
    app[TRUST] = WidevineTrust(app[KEYRING].root_public_key)
    app.router.add_get("/fairplay/certificate", certificate, name="fairplay.certificate")
    app.router.add_post("/fairplay/license", license_exchange, name="fairplay.license")
