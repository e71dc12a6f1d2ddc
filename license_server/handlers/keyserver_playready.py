"""``POST /playready/packaging``: PlayReady AcquirePackagingData for ``shaka-packager
--enable_playready_encryption --playready_server_url``. The program identifier is the
content id; its one key (the SD key of the key service, shared by every track, as
PlayReady packaging data has one key) comes with the PlayReady Object for the PSSH."""

from __future__ import annotations

import logging

from aiohttp import web

from license_server import derived_keys
from license_server.errors import ERROR_CODE_HEADER, DrmError
from license_server.http import KEYRING, error_renderer, read_body
from license_server.protocols.keyserver import playready_packaging as packaging
from license_server.protocols.playready import wrmheader

log = logging.getLogger(__name__)

PATH = "/playready/packaging"
TRACK = "SD"
HEADER_VERSION = "4.0.0.0"  # one KID, AESCTR: what every PlayReady client reads


@error_renderer("keyserver_playready")
def render_error(error: DrmError) -> web.Response:
    return web.Response(body=packaging.build_fault(error), status=error.status, content_type="text/xml",
                        charset="utf-8", headers={ERROR_CODE_HEADER: error.code.value})


async def acquire_packaging_data(request: web.Request) -> web.Response:
    wanted = packaging.parse_request(await read_body(request, packaging.MAX_BODY_BYTES))
    (key,) = derived_keys.issue_for_packager(request.app[KEYRING], wanted.program_identifier, [TRACK], [None])
    header = wrmheader.WrmHeader(HEADER_VERSION, (
        wrmheader.HeaderKey(key.kid, wrmheader.AESCTR, wrmheader.kid_checksum(key.kid, key.key, wrmheader.AESCTR)),))
    pro = wrmheader.build_pro(wrmheader.build_wrmheader(header))
    log.info("key service: PlayReady packaging data for %r", wanted.program_identifier)
    return web.Response(body=packaging.build_response(wanted.program_identifier, key.kid, key.key, pro),
                        content_type="text/xml", charset="utf-8")


def setup(app: web.Application) -> None:
    app.router.add_post(PATH, acquire_packaging_data, name="keyserver_playready.packaging")
