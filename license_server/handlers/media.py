"""The media origin: ``POST /downloads`` and presigned ``GET /media/...``.

Thin handlers over :mod:`license_server.downloads` (who may download what),
:mod:`license_server.media_library` (the disk) and :mod:`license_server.presign`
(URL signatures). Media bytes go out through aiohttp's ``FileResponse``
(``sendfile``), never through Python buffers; it also answers Range requests
(206 + Content-Range). Errors are JSON with the stable code in
``X-DRM-Error-Code``.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from pydantic import ValidationError

from license_server import crypto, presign
from license_server.core import entitlements
from license_server.core.model import LicenseKind
from license_server.core.ports import DownloadRecord
from license_server.downloads import (
    DownloadAnswer,
    DownloadFile,
    DownloadRendition,
    DownloadRequest,
    check_account,
    check_device,
    check_license,
    check_tier,
    estimate,
    resolve_downloader,
    rung_files,
)
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode, malformed
from license_server.http import KEYRING, SETTINGS, access_of, read_body
from license_server.media_library import MediaLibrary, UrlSigningKey
from license_server.namespaces import namespace_of

log = logging.getLogger(__name__)

LIBRARY = web.AppKey("media_library", MediaLibrary)
SIGNING_KEY = web.AppKey("media_url_signing_key", UrlSigningKey)
MAX_REQUEST_BYTES = 16 * 1024
MEDIA_PREFIX = "/media/"
_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


async def authorize_download(request: web.Request) -> web.Response:
    """Authorize a download for a device and answer the presigned file list of the rung."""
    body = await read_body(request, MAX_REQUEST_BYTES)
    try:
        wanted = DownloadRequest.model_validate_json(body)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()[:5])
        raise malformed(f"not a valid download request (check: {fields})") from exc
    app = request.app
    namespace = namespace_of(request)
    keyring, library, now = app[KEYRING], app[LIBRARY], namespace.clock.now()
    service, access = namespace.service, access_of(request)
    store = service.store
    try:
        entitlement = service.entitlement(access, now)
        title = keyring.catalog.title(wanted.content_id)
        if title is None:
            raise DrmError(ErrorCode.CONTENT_NOT_FOUND, f"content {wanted.content_id!r} is not in the catalog")
        rights = service.rights.current()
        entitlements.authorize(entitlement, content_id=wanted.content_id, rights=rights.title(wanted.content_id),
                               kind=LicenseKind.PERSISTENT, device_id=wanted.device_id, region_header=access.region)
        device = store.device(wanted.device_id)
        model = keyring.model_by_system_id(device["system_id"]) if device else None
        check_device(device, model.device_type if model else None)
        downloader = resolve_downloader(wanted, entitlement)
        check_tier(downloader, rights)
        record = store.license(wanted.license_id)
        check_account(record, downloader, entitlement)
        check_license(record, device_id=wanted.device_id, content_id=wanted.content_id, now=now)
        package = library.package(wanted.content_id, wanted.scheme)
        renditions, files = rung_files(package, wanted.quality)
        sizes = {path: library.file_size(wanted.content_id, wanted.scheme, path) for path, _ in files}
        expires_at = now + app[SETTINGS].media_url_ttl
        secret = app[SIGNING_KEY].secret()
        base = f"{namespace.url_prefix}{MEDIA_PREFIX}{wanted.content_id}/{wanted.scheme}/"  # URLs keep the namespace
        total, per_hour = estimate(renditions, sizes)
        answer = DownloadAnswer(
            download_id=crypto.random_bytes(12).hex(), content_id=wanted.content_id, quality=wanted.quality,
            scheme=wanted.scheme, expires_at=expires_at, estimated_bytes=total, bytes_per_hour=per_hour,
            files=[DownloadFile(path=path, url=presign.sign(secret, base + path, expires_at).url, size=sizes[path],
                                track=track) for path, track in files],
            renditions=[DownloadRendition(track=r.track, kid=r.kid.lower(), kids=[k.lower() for k in r.kids],
                                          bandwidth=r.bandwidth, duration=r.duration, init=r.init,
                                          segments=r.segments) for r in renditions],
        )
        # One transaction: the download, its audit entry and the single-use token check.
        service.record_download(DownloadRecord(
            download_id=answer.download_id, device_id=wanted.device_id, content_id=wanted.content_id,
            license_id=wanted.license_id, account=downloader.account, tier=downloader.tier, quality=wanted.quality,
            scheme=wanted.scheme, files=len(files), total_bytes=total, authorized_at=now, expires_at=expires_at,
        ), entitlement)
    except DrmError as error:
        log.info("refused download of %s to %s: %s", wanted.content_id, wanted.device_id, error.code.value)
        store.record_refusal(error, system="media", device_id=wanted.device_id, content_id=wanted.content_id,
                             license_id=wanted.license_id, now=now)
        raise
    log.info("authorized download %s: %s %s %s, %d files, %d bytes, to %s", answer.download_id, wanted.content_id,
             wanted.quality, wanted.scheme, len(files), total, wanted.device_id)
    return web.json_response(answer.model_dump(), headers={"Cache-Control": "no-store"})


async def media_file(request: web.Request) -> web.StreamResponse:
    """Serve a packaged file, only with a valid and unexpired presigned URL."""
    relative = request.match_info["path"]
    namespace = namespace_of(request)
    now = namespace.clock.now()
    expires_at = presign.verify(request.app[SIGNING_KEY].secret(), namespace.url_prefix + MEDIA_PREFIX + relative,
                                request.query.get("exp"), request.query.get("sig"), now=now)
    path = request.app[LIBRARY].resolve(relative.split("/"))
    size = path.stat().st_size
    headers = {"Accept-Ranges": "bytes", "Cache-Control": f"private, max-age={max(0, expires_at - now)}"}
    header = request.headers.get("Range")
    if header is not None and not range_satisfiable(header, size):
        error = DrmError(ErrorCode.RANGE_NOT_SATISFIABLE, f"range {header[:64]!r} cannot be served from {size} bytes")
        return web.json_response(
            {"error": {"code": error.code.value, "message": error.message}}, status=error.status,
            headers={ERROR_CODE_HEADER: error.code.value, "Content-Range": f"bytes */{size}", **headers},
        )
    return web.FileResponse(path, headers=headers)


def range_satisfiable(header: str, size: int) -> bool:
    """True for one well-formed byte range (``a-b``, ``a-``, ``-n``) that overlaps the file."""
    match = _RANGE.match(header.strip())
    if not match:
        return False  # malformed, another unit, or several ranges: we serve one range only
    first, last = match.groups()
    if not first:
        return bool(last) and int(last) > 0 and size > 0
    if last and int(last) < int(first):
        return False
    return int(first) < size


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[LIBRARY] = MediaLibrary(settings.media_path)
    app[SIGNING_KEY] = UrlSigningKey(settings.url_signing_key_path)
    app.router.add_post("/downloads", authorize_download, name="media.downloads")
    app.router.add_get(MEDIA_PREFIX + "{path:.+}", media_file, name="media.file")
