"""FairPlay-style endpoints: ``GET /fairplay/certificate`` and ``POST /fairplay/license``.

The SPC's transport shapes (raw, base64 text, form, JSON) and the CKC's answer
shapes are :mod:`license_server.protocols.fairplay.transport`. Errors: status,
``X-DRM-Error-Code`` and a small JSON body.
"""

from __future__ import annotations

import base64

from aiohttp import web

from license_server.core import invalidation
from license_server.core.model import Grant
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode, malformed
from license_server.http import KEYRING, access_of, error_renderer, read_body
from license_server.keyring import Keyring
from license_server.namespaces import namespace_of
from license_server.protocols.fairplay import ckc, fields, spc
from license_server.protocols.fairplay import policy as fp_policy
from license_server.protocols.fairplay.transport import Answer, answer_shape, encode_answer, read_spc
from license_server.protocols.widevine.trust import WidevineTrust

TRUST = web.AppKey("fairplay_trust", WidevineTrust)
MAX_BODY_BYTES = 128 * 1024  # base64 of the largest SPC, plus form or JSON framing


@error_renderer("fairplay")
def render_error(error: DrmError) -> web.Response:
    return web.json_response({"status": error.status, "code": error.code.value, "message": error.message},
                             status=error.status, headers={ERROR_CODE_HEADER: error.code.value})


def _keys(keyring: Keyring) -> tuple[bytes, bytes]:
    if not keyring.fairplay_certificate or not keyring.fairplay_key_pem:
        raise DrmError(ErrorCode.UNSUPPORTED_REQUEST, "keys/ has no FairPlay application certificate; "
                       "run `license-server keys init --dir <keys> --force`")
    return keyring.fairplay_certificate, keyring.fairplay_key_pem


def render(ckc_bytes: bytes, answer: Answer) -> web.Response:
    body, content_type = encode_answer(ckc_bytes, answer)
    if answer is Answer.BINARY:
        return web.Response(body=body, content_type=content_type)
    return web.Response(text=body.decode("ascii"), content_type=content_type)


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
    if parsed.playback.state == fields.PlaybackState.STOPPED:  # lease end: the stream session closes at once
        closed = namespace_of(request).service.end_playback(parsed.challenge, request.app[TRUST])
        return render(ckc.build_lease_end_ack(parsed.secrets, fields.InvalidationAck(tuple(closed), ())), answer)
    overrides = fp_policy.overrides_for(request.query, license_kind=parsed.challenge.license_kind,
                                        audio_only=parsed.audio_only)
    offline_key = bool(parsed.capabilities.flags & fields.Capability.OFFLINE_KEY)

    def build(grant: Grant) -> tuple[bytes, dict[str, str]]:
        return ckc.build_ckc(grant, parsed.secrets, offline_key_supported=offline_key), {}

    service = namespace_of(request).service
    answer_bytes = await service.acquire_async(parsed.challenge, trust=request.app[TRUST], overrides=overrides,
                                               build=build, access=access_of(request))
    return render(answer_bytes, answer)


def _invalidate(request: web.Request, parsed: spc.ParsedSpc) -> bytes:
    record, sync = parsed.destruction, parsed.offline_sync
    assert sync is not None
    if record is None:
        raise malformed("an offline-sync SPC must carry the signed destruction record")
    if sorted(d.hex() for d in sync.deleted) != sorted(record.license_ids):
        raise malformed("the offline-sync deleted ids and the destruction record disagree")
    result = invalidation.invalidate(namespace_of(request).service, parsed.challenge, trust=request.app[TRUST],
                                     license_ids=record.license_ids, content_id=record.content_id,
                                     reason=f"secure invalidation: deleted on the device at {record.deleted_at}")
    ack = fields.InvalidationAck(result.released, result.not_found)
    return ckc.build_invalidation_ack(parsed.secrets, ack, sync)


def setup(app: web.Application) -> None:
    app[TRUST] = WidevineTrust(app[KEYRING].root_public_key)
    app.router.add_get("/fairplay/certificate", certificate, name="fairplay.certificate")
    app.router.add_post("/fairplay/license", license_exchange, name="fairplay.license")
