"""HTTP plumbing shared by the dialect handlers: app keys, bounded body reads,
and the one error middleware that renders :class:`DrmError` in each dialect's
native shape. Every rendered refusal is counted there (:func:`render_error`),
by route family and stable code; unexpected database errors are counted too."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from license_server.clock import Clock
from license_server.core.entitlements import Access
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode
from license_server.keyring import Keyring
from license_server.metrics import NO_ROUTE, Metrics, is_store_error
from license_server.settings import Settings
from license_server.tokens import TOKEN_HEADER

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
KEYRING = web.AppKey("keyring", Keyring)
CLOCK = web.AppKey("clock", Clock)  # the base clock; a request's clock is namespace_of(request).clock
METRICS = web.AppKey("metrics", Metrics)

ErrorRenderer = Callable[[DrmError], web.Response]
_RENDERERS: dict[str, ErrorRenderer] = {}


def error_renderer(dialect: str) -> Callable[[ErrorRenderer], ErrorRenderer]:
    """Register how a dialect shapes errors; routes are named ``<dialect>.<name>``."""

    def register(render: ErrorRenderer) -> ErrorRenderer:
        _RENDERERS[dialect] = render
        return render

    return register


def json_error(error: DrmError) -> web.Response:
    return web.json_response(
        {"error": {"code": error.code.value, "message": error.message}},
        status=error.status,
        headers={ERROR_CODE_HEADER: error.code.value},
    )


def render_error(request: web.Request, error: DrmError) -> web.Response:
    """Render ``error`` in the native shape of the dialect that owns the matched route, and count it
    (the error middleware, and middlewares that answer on a handler's behalf: admin guard, faults)."""
    dialect = _dialect(request)
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.refused(dialect or NO_ROUTE, error.code.value)
    return _RENDERERS.get(dialect, json_error)(error)


def _dialect(request: web.Request) -> str:
    route = request.match_info.route
    name = route.name if route is not None else None
    return (name or "").split(".")[0]


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except DrmError as error:
        return render_error(request, error)
    except web.HTTPRequestEntityTooLarge:
        return render_error(request, DrmError(ErrorCode.CHALLENGE_TOO_LARGE))
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("unhandled error on %s %s", request.method, request.match_info.route.name or "unrouted")
        metrics = request.app.get(METRICS)
        if metrics is not None and is_store_error(exc):
            metrics.store_error(exc)
        return render_error(request, DrmError(ErrorCode.INTERNAL_ERROR))


MODE_HEADER = "X-DRM-Mode"
REGION_HEADER = "X-DRM-Region"


def access_of(request: web.Request) -> Access:
    """The entitlement token and the viewer's region a request carries.

    In strict mode the policy comes from the token alone, so ``cfg=`` test
    overrides are refused rather than silently ignored.
    """
    if request.app[SETTINGS].require_token and "cfg" in request.query:
        raise DrmError(ErrorCode.INVALID_POLICY_OVERRIDE,
                       "cfg= overrides are a development-mode knob; with --require-token the token carries the policy")
    token = request.headers.get(TOKEN_HEADER)
    region = request.headers.get(REGION_HEADER)
    return Access(token=token.strip() if token else None, region=region[:8] if region else None)


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read the whole body, whatever its framing (Content-Length or chunked), up to ``limit`` bytes;
    larger bodies are refused without reading them all."""
    if request.content_length is not None and request.content_length > limit:
        raise DrmError(ErrorCode.CHALLENGE_TOO_LARGE, f"body larger than {limit} bytes")
    if request.body_exists and request.content.at_eof():
        body = await request.read()  # a middleware (fault matching) already read it: aiohttp's cached copy
    else:
        body = await _read_up_to(request, limit + 1)
    if len(body) > limit:
        raise DrmError(ErrorCode.CHALLENGE_TOO_LARGE, f"body larger than {limit} bytes")
    return body


async def _read_up_to(request: web.Request, most: int) -> bytes:
    """Read until end of body or ``most`` bytes; one ``read`` returns only what has arrived (a chunk)."""
    parts: list[bytes] = []
    total = 0
    while total < most:
        part = await request.content.read(most - total)
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts)
