"""``POST /widevine/license``: the Widevine-style exchange, as a thin handler."""

from __future__ import annotations

from aiohttp import web

from license_server.core.model import Grant, RequestKind
from license_server.core.policy import PolicyOverrides
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode
from license_server.http import KEYRING, SERVICE, error_renderer, read_body
from license_server.protocols.widevine import codec
from license_server.protocols.widevine.trust import WidevineTrust

TRUST = web.AppKey("widevine_trust", WidevineTrust)
CONTENT_TYPE = "application/octet-stream"


@error_renderer("widevine")
def render_error(error: DrmError) -> web.Response:
    return web.Response(
        body=codec.build_error(error),
        status=error.status,
        content_type=CONTENT_TYPE,
        headers={ERROR_CODE_HEADER: error.code.value},
    )


async def license_exchange(request: web.Request) -> web.Response:
    body = await read_body(request, codec.MAX_MESSAGE_BYTES)
    keyring = request.app[KEYRING]
    if codec.is_service_certificate_request(body):
        return web.Response(body=codec.build_service_certificate(keyring.service_certificate), content_type=CONTENT_TYPE)
    parsed = codec.parse_license_request(body, service_key_pem=keyring.service_key_pem)
    overrides = PolicyOverrides()
    if parsed.challenge.kind is not RequestKind.NEW:
        raise DrmError(ErrorCode.UNSUPPORTED_REQUEST, "renewal and release are not enabled on this server")

    def build(grant: Grant) -> tuple[bytes, dict[str, str]]:
        assert grant.device is not None
        issued = codec.build_license(grant, parsed, device_public_key=grant.device.public_key)
        return issued.body, {"server_mac": issued.keys.server_mac.hex(), "client_mac": issued.keys.client_mac.hex()}

    answer = request.app[SERVICE].acquire(parsed.challenge, trust=request.app[TRUST], overrides=overrides, build=build)
    return web.Response(body=answer, content_type=CONTENT_TYPE)


def setup(app: web.Application) -> None:
    app[TRUST] = WidevineTrust(app[KEYRING].root_public_key)
    app.router.add_post("/widevine/license", license_exchange, name="widevine.license")
