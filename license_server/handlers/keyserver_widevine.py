"""``POST /widevine/cenc/getcontentkey/<signer>`` (and ``/cenc/getcontentkey[/<signer>]``):
the Widevine common-encryption key API that ``shaka-packager --enable_widevine_encryption``
calls. A thin handler: verify the signer, derive and record the keys, answer them."""

from __future__ import annotations

import logging

from aiohttp import web

from license_server import derived_keys
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode
from license_server.http import KEYRING, error_renderer, read_body
from license_server.packager_signers import Signer, load_signers
from license_server.protocols.keyserver import widevine_cenc as cenc

log = logging.getLogger(__name__)

SIGNERS = web.AppKey("packager_signers", dict)
PATHS = ("/widevine/cenc/getcontentkey", "/cenc/getcontentkey")


@error_renderer("keyserver_widevine")
def render_error(error: DrmError) -> web.Response:
    return web.Response(body=cenc.build_error(error), status=error.status, content_type="application/json",
                        headers={ERROR_CODE_HEADER: error.code.value})


def _signer(request: web.Request, named: str | None) -> Signer:
    in_path = request.match_info.get("signer")
    if in_path and named and named != in_path:
        raise DrmError(ErrorCode.KEYSERVER_SIGNER_UNKNOWN, "the body's signer is not the URL's")
    name = in_path or named
    signers: dict[str, Signer] = request.app[SIGNERS]
    if not name or name not in signers:
        raise DrmError(ErrorCode.KEYSERVER_SIGNER_UNKNOWN, f"unknown signer {str(name)[:64]!r}")
    return signers[name]


async def get_content_key(request: web.Request) -> web.Response:
    signed = cenc.parse_signed_request(await read_body(request, cenc.MAX_BODY_BYTES))
    signer = _signer(request, signed.signer)
    if not signed.signature or not signer.verifies(signed.request, signed.signature):
        raise DrmError(ErrorCode.KEYSERVER_SIGNATURE_INVALID, f"the request is not signed by {signer.name}")
    wanted = cenc.parse_request(signed.request)
    content_id = derived_keys.content_id_text(wanted.content_id)
    keys = derived_keys.issue_for_packager(request.app[KEYRING], content_id, wanted.tracks, wanted.periods)
    # The PSSH names the content id when the license dialects can read it back as that text.
    pssh_cid = wanted.content_id if content_id.encode() == wanted.content_id else None
    tracks = []
    for period in wanted.periods:
        of_period = [k for k in keys if k.period == period]
        data = cenc.pssh_data(pssh_cid, [k.kid for k in of_period], wanted.protection_scheme)
        tracks += [cenc.ResponseTrack(k.track, k.kid, k.key, data, period) for k in of_period]
    log.info("key service: %s fetched %d key(s) of %r (%d period(s))", signer.name, len(tracks), content_id,
             len(wanted.periods))
    return web.Response(body=cenc.build_response(wanted.content_id, tracks), content_type="application/json")


def setup(app: web.Application) -> None:
    app[SIGNERS] = load_signers(app[KEYRING].directory)
    for path in PATHS:
        app.router.add_post(path, get_content_key, name=f"keyserver_widevine.{path.strip('/').replace('/', '_')}")
        app.router.add_post(path + "/{signer}", get_content_key,
                            name=f"keyserver_widevine.{path.strip('/').replace('/', '_')}_signer")
