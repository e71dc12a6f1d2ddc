"""``POST /cpix`` (SPEKE v2.0: ``X-Speke-Version: 2.0``, a CPIX 2.3 request) and
``GET /cpix/<content_id>``: the key service's keys as a CPIX 2.3 document.

The encryptor's KIDs are overridden by the derived ones (every ``kid`` that
names a requested key is rewritten consistently), so that the keys equal what
the Widevine key API answers for the same content id, track type and period.
``GET`` takes ``?tracks=SD,HD,AUDIO`` (default: all five), ``?scheme=cbcs`` and,
for key rotation, ``?first_period=N&periods=K``.
"""

from __future__ import annotations

import logging

from aiohttp import web

from license_server import derived_keys
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode
from license_server.http import KEYRING, error_renderer, read_body
from license_server.protocols.keyserver import cpix
from license_server.protocols.keyserver.cpix_answer import (
    AnswerKey,
    AnswerSystem,
    build_answer,
)

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/xml"
USER_AGENT = "drm-license-emulator key service"
MAX_PERIODS = 100


@error_renderer("keyserver_cpix")
def render_error(error: DrmError) -> web.Response:
    """SPEKE answers a refusal with its message as the body; our code rides in the header."""
    return web.Response(text=error.message, status=error.status, content_type="text/plain",
                        headers={ERROR_CODE_HEADER: error.code.value, "X-Speke-Version": cpix.SPEKE_VERSION})


def _answer(request: web.Request, wanted: cpix.CpixRequest) -> web.Response:
    content_id = derived_keys.content_id_text(wanted.content_id.encode("utf-8"))
    keyring = request.app[KEYRING]
    derived: dict[bytes, AnswerKey] = {}
    for asked in wanted.keys:
        (key,) = derived_keys.issue_for_packager(keyring, content_id, [asked.track], [asked.period])
        derived[asked.kid] = AnswerKey(key.kid, key.key, asked.scheme, asked.track, asked.period_id,
                                       asked.explicit_iv, wanted.filters.get(asked.kid, ()))
    systems = [AnswerSystem(derived[s.kid].kid, s.system_id, s.wanted) for s in wanted.systems]
    pssh_cid = content_id.encode() if content_id == wanted.content_id else None
    body = build_answer(wanted.content_id, list(derived.values()), systems, wanted.periods, pssh_cid)
    log.info("key service: CPIX answer for %r with %d key(s)", content_id, len(derived))
    return web.Response(body=body, content_type=CONTENT_TYPE, charset="utf-8",
                        headers={"X-Speke-Version": cpix.SPEKE_VERSION, "X-Speke-User-Agent": USER_AGENT})


async def speke(request: web.Request) -> web.Response:
    cpix.check_speke_version(request.headers.get("X-Speke-Version"))
    return _answer(request, cpix.parse_request(await read_body(request, cpix.MAX_BODY_BYTES)))


def _int(request: web.Request, name: str, default: int | None) -> int | None:
    value = request.query.get(name)
    if value is None:
        return default
    if not value.isdigit() or int(value) >= 2**32:
        raise DrmError(ErrorCode.KEYSERVER_MALFORMED_REQUEST, f"{name} must be a non-negative integer")
    return int(value)


async def get_document(request: web.Request) -> web.Response:
    content_id = request.match_info["content_id"]
    tracks = [t for t in request.query.get("tracks", ",".join(cpix.TRACK_TYPES)).split(",") if t]
    unknown = [t for t in tracks if t not in cpix.TRACK_TYPES]
    if unknown or not tracks:
        raise DrmError(ErrorCode.KEYSERVER_TRACK_TYPE_UNKNOWN, f"unknown track type(s) {', '.join(unknown)[:60]}")
    scheme = request.query.get("scheme", "cenc")
    if scheme not in cpix.SCHEMES:
        raise DrmError(ErrorCode.KEYSERVER_MALFORMED_REQUEST, "scheme must be cenc, cbcs, cbc1 or cens")
    first, count = _int(request, "first_period", None), _int(request, "periods", 1) or 0
    if not 1 <= count <= MAX_PERIODS:
        raise DrmError(ErrorCode.KEYSERVER_MALFORMED_REQUEST, f"periods must be 1 to {MAX_PERIODS}")
    periods = tuple(cpix.Period(f"period_{i}", i) for i in range(first, first + count)) if first is not None else ()
    keys, systems = [], []
    for period in periods or (None,):
        for track in tracks:
            placeholder = derived_keys.derive(b"cpix-get", content_id, track, period.index if period else None).kid
            keys.append(cpix.RequestedKey(placeholder, scheme, None, track, period.index if period else None,
                                          period.id if period else None))
            systems += [cpix.RequestedSystem(placeholder, system, ()) for system in cpix.SYSTEMS]
    return _answer(request, cpix.CpixRequest(content_id, tuple(keys), tuple(systems), periods))


def setup(app: web.Application) -> None:
    app.router.add_post("/cpix", speke, name="keyserver_cpix.speke")
    app.router.add_get("/cpix/{content_id}", get_document, name="keyserver_cpix.document")
