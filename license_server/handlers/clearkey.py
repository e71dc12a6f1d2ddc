"""``POST /clearkey/license``: W3C EME Clear Key for browser players, as a thin handler.

License requests walk the neutral pipeline with no device (Clear Key has no
device identity) and a fresh random request id (it has no nonce either).
Release messages are recorded in the store and acknowledged. Every answer,
errors and the ``OPTIONS`` preflight included, carries CORS headers so a
player on another origin can call the endpoint and read ``X-DRM-Error-Code``.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

from license_server.core.model import Grant
from license_server.errors import ERROR_CODE_HEADER, DrmError
from license_server.http import access_of, error_renderer, json_error, read_body
from license_server.namespaces import namespace_of
from license_server.protocols import clearkey
from license_server.protocols.cfg import parse_overrides

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/json"
ALLOWED_METHODS = "POST, OPTIONS"
DEFAULT_ALLOWED_HEADERS = "Content-Type"
_HEADER_LIST = re.compile(r"[A-Za-z0-9-]+(\s*,\s*[A-Za-z0-9-]+)*\Z")
CORS_HEADERS = {
    # No cookies or credentials are involved, so any origin may call the endpoint.
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": ERROR_CODE_HEADER,
}


@error_renderer("clearkey")
def render_error(error: DrmError) -> web.Response:
    """``{"error": {"code", "message"}}`` with the stable code header, readable cross-origin."""
    response = json_error(error)
    response.headers.update(CORS_HEADERS)
    return response


async def preflight(request: web.Request) -> web.Response:
    """Answer the CORS preflight a browser sends before a JSON POST from another origin."""
    requested = request.headers.get("Access-Control-Request-Headers", "").strip()
    allowed = requested if requested and len(requested) <= 512 and _HEADER_LIST.match(requested) \
        else DEFAULT_ALLOWED_HEADERS
    return web.Response(status=204, headers={
        **CORS_HEADERS,
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": allowed,
        "Access-Control-Max-Age": "600",
        "Vary": "Access-Control-Request-Headers",
    })


async def license_exchange(request: web.Request) -> web.Response:
    body = await read_body(request, clearkey.MAX_MESSAGE_BYTES)
    message = clearkey.parse_message(body)
    if isinstance(message, clearkey.ReleaseRequest):
        return _release(request, message)
    # ?cfg=(...) as for every dialect: it changes what the policy engine decides and
    # records (e.g. persist:true applies the download rules); a JWK set carries no
    # durations, so the CDM enforces none of them.
    overrides = parse_overrides(request.query)
    challenge = clearkey.to_challenge(message, request_time=namespace_of(request).clock.now())

    def build(grant: Grant) -> tuple[bytes, dict[str, str]]:
        return clearkey.build_license(grant, message.session_type), {}

    answer = await namespace_of(request).service.acquire_async(challenge, trust=None, overrides=overrides, build=build,
                                          access=access_of(request))
    return web.Response(body=answer, content_type=CONTENT_TYPE, headers=CORS_HEADERS)


def _release(request: web.Request, message: clearkey.ReleaseRequest) -> web.Response:
    released = namespace_of(request).service.release_key_ids(clearkey.SYSTEM, tuple(message.kids))
    log.info("clearkey release of %d key id(s): %d license(s) marked released", len(message.kids), len(released))
    return web.Response(body=clearkey.build_release_ack(message.kids), content_type=CONTENT_TYPE, headers=CORS_HEADERS)


def setup(app: web.Application) -> None:
    app.router.add_post("/clearkey/license", license_exchange, name="clearkey.license")
    app.router.add_route("OPTIONS", "/clearkey/license", preflight, name="clearkey.preflight")
