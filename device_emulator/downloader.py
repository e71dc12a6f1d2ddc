"""The two downloads of an offline title: the persistent license, then the media.

1. License first (no license, no download): a stored, still-loadable
   persistent license from an earlier attempt is reused; otherwise one is
   acquired online through :func:`device_emulator.acquire.acquire`.
2. ``POST /downloads`` authorizes the media for this device and returns the
   files of one quality rung as presigned URLs, with a storage estimate.
3. Every file is fetched into ``DEVICE_DIR/media/<content_id>/`` through its
   URL. Bytes land in ``<file>.part``; an interrupted run is resumed with an
   HTTP Range request from the partial file's size; a file is renamed into
   place only when its size matches the list.

``DEVICE_DIR/media/<content_id>/download.json`` records the download
(content, scheme, quality, license key_set_id, renditions, files, status);
offline playback reads it (:func:`load_manifest`).
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from device_emulator import transport
from device_emulator.acquire import acquire
from device_emulator.device import Device
from device_emulator.errors import CdmError
from device_emulator.license_store import LicenseStore
from device_emulator.namespaces import PREFIXED_MEDIA, resolve
from device_emulator.offline import adapter_for
from device_emulator.transport import USER_AGENT, TransportError
from license_server.core.model import LicenseKind
from license_server.errors import ERROR_CODE_HEADER
from license_server.protocols.downloads import DownloadAnswer

MANIFEST = "download.json"
FORMAT_VERSION = 1
CHUNK = 64 * 1024
RETRY_WITH_NEW_LICENSE = {"LICENSE_NOT_FOUND", "LICENSE_EXPIRED", "LICENSE_RELEASED", "PERSISTENT_LICENSE_REQUIRED"}


class DownloadRefused(Exception):
    """The license server or the media origin said no (stable ``code``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class DownloadError(Exception):
    """The download failed (network, storage, size mismatch); run again to resume."""


@dataclass
class DownloadResult:
    content_id: str
    quality: str
    scheme: str
    download_id: str
    key_set_id: str
    license_id: str
    license_reused: bool
    estimated_bytes: int
    bytes_per_hour: int
    files: int
    fetched_bytes: int = 0
    present_bytes: int = 0  # already complete before this run
    resumed_files: list[str] = field(default_factory=list)
    directory: str = ""
    system: str = "widevine"

    def as_dict(self) -> dict[str, Any]:
        return {"status": "complete", **self.__dict__}


def media_root(device: Device) -> Path:
    return device.directory / "media"


def load_manifest(device: Device, content_id: str) -> dict[str, Any] | None:
    """The recorded download of ``content_id`` on ``device`` (``None`` if never started)."""
    path = media_root(device) / content_id / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def download(device: Device, *, server: str, content_id: str, quality: str = "standard", scheme: str = "cenc",
             account: str | None = None, tier: str | None = None,
             on_plan: Callable[[DownloadAnswer, int], None] | None = None,
             on_progress: Callable[[int], None] | None = None,
             interrupt_after: int | None = None, headers: dict[str, str] | None = None,
             system: str = "widevine", license_url: str | None = None,
             new_license: bool = False) -> DownloadResult:
    """Run both downloads; raise :class:`DownloadRefused` or :class:`DownloadError`.

    ``system`` is the DRM system of the persistent license (any dialect: the
    same encrypted package serves them all).

    A valid persistent license the device already holds for the title (from an
    earlier download or ``acquire``) is reused, so one title never holds two
    licenses against the account's caps; ``new_license`` acquires a new one anyway.

    ``headers`` (e.g. the entitlement token) go with the license request and
    ``POST /downloads``, never to the media origin.

    ``on_plan(answer, remaining_bytes)`` is called before any media byte is
    fetched (the storage estimate); ``on_progress(n)`` after every chunk.
    ``interrupt_after`` drops the transfer after that many bytes (a testing
    knob that emulates a lost connection).
    """
    directory = media_root(device) / content_id
    previous = load_manifest(device, content_id)
    key_set_id, license_id, reused = _license(device, server, content_id, None if new_license else previous, headers,
                                              system, license_url, reuse_stored=not new_license)
    body = {"device_id": device.device_id, "content_id": content_id, "license_id": license_id,
            "quality": quality, "scheme": scheme}
    body.update({k: v for k, v in (("account", account), ("tier", tier)) if v is not None})
    try:
        answer = _authorize(server, body, headers)
    except DownloadRefused as refused:
        if not reused or refused.code not in RETRY_WITH_NEW_LICENSE:
            raise
        key_set_id, license_id, reused = _license(device, server, content_id, None, headers, system, license_url)
        answer = _authorize(server, {**body, "license_id": license_id}, headers)
    if previous and (previous.get("scheme"), previous.get("quality")) != (scheme, quality):
        shutil.rmtree(directory, ignore_errors=True)  # another rendition set: start clean
    paths = {f.path: directory.joinpath(*_safe_parts(f.path)) for f in answer.files}
    present = sum(f.size for f in answer.files if _complete(paths[f.path], f.size))
    partial = sum(min(_part_size(paths[f.path]), f.size) for f in answer.files if not _complete(paths[f.path], f.size))
    remaining = answer.estimated_bytes - present - partial
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if remaining > free:
        raise DownloadError(f"not enough storage: the download needs {remaining} more bytes, {free} are free")
    if on_plan:
        on_plan(answer, remaining)
    manifest = _manifest(device, answer, server, key_set_id, license_id, previous)
    manifest["system"] = system
    _write_manifest(directory, manifest)
    result = DownloadResult(content_id, quality, scheme, answer.download_id, key_set_id, license_id, reused,
                            answer.estimated_bytes, answer.bytes_per_hour, len(answer.files),
                            present_bytes=present, directory=str(directory), system=system)
    budget = [interrupt_after]
    for entry, item in zip(answer.files, manifest["files"]):
        target = paths[entry.path]
        if _complete(target, entry.size):
            item["complete"] = True
            continue
        resumed, fetched = _fetch(resolve(server, entry.url), target, entry.size, on_progress, budget)
        result.fetched_bytes += fetched
        if resumed:
            result.resumed_files.append(entry.path)
        item["complete"] = True
        _write_manifest(directory, manifest)
    manifest.update(status="complete", completed_at=device.now())
    _write_manifest(directory, manifest)
    return result


# ------------------------------------------------------------------ license

def _license(device: Device, server: str, content_id: str, previous: dict[str, Any] | None,
             headers: dict[str, str] | None = None, system: str = "widevine",
             license_url: str | None = None, reuse_stored: bool = False) -> tuple[str, str, bool]:
    """(key_set_id, license_id, reused): the recorded license if it still loads, else (with
    ``reuse_stored``) the newest active stored one of the title that loads, else a new one
    (from ``license_url`` when given, e.g. with a ``cfg=`` policy)."""
    store = LicenseStore(device.license_db_path)
    try:
        recorded = store.get(previous["key_set_id"]) if previous and previous.get("key_set_id") else None
        candidates = [recorded] if recorded is not None else []
        if reuse_stored:
            candidates += store.for_content(content_id, system=system)
    finally:
        store.close()
    for stored in candidates:
        if stored.state == "active" and stored.content_id == content_id and stored.system == system:
            try:
                adapter_for(system).load(device, stored).close()
            except CdmError:
                continue
            return stored.key_set_id, stored.license_id, True
    result = acquire(device, server=server, content_id=content_id, kind=LicenseKind.PERSISTENT, headers=headers,
                     system=system, url=license_url)
    if result.status != "granted" or not result.key_set_id or not result.license_id:
        error = result.error or {"code": "LICENSE_NOT_PERSISTED", "message": "no persistent license was stored"}
        raise DownloadRefused(error["code"], f"license refused, nothing downloaded: {error['message']}")
    return result.key_set_id, result.license_id, False


# ----------------------------------------------------------------- the plan

def _authorize(server: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> DownloadAnswer:
    reply = transport.post(server.rstrip("/") + "/downloads", json.dumps(body).encode(),
                           content_type="application/json", headers=headers)
    if reply.status != 200:
        code, message = _error(reply.body, reply.error_code, reply.status)
        if 400 <= reply.status < 500:
            raise DownloadRefused(code, message)
        raise DownloadError(f"the server failed to authorize the download: {code}: {message}")
    try:
        answer = DownloadAnswer.model_validate_json(reply.body)
    except ValidationError as exc:
        raise DownloadError("the server's download answer is malformed") from exc
    for entry in answer.files:
        _safe_parts(entry.path)
        if not PREFIXED_MEDIA.match(entry.url) or entry.size < 0:
            raise DownloadError(f"the server listed an unusable file: {entry.path}")
    if answer.estimated_bytes != sum(f.size for f in answer.files):
        raise DownloadError("the server's storage estimate does not match its file list")
    return answer


def _error(body: bytes, header_code: str | None, status: int) -> tuple[str, str]:
    try:
        error = json.loads(body)["error"]
        return header_code or error["code"], error.get("message", "")
    except (ValueError, KeyError, TypeError):
        return header_code or f"HTTP_{status}", body[:200].decode("utf-8", "replace")


def _safe_parts(relative: str) -> list[str]:
    """A server-supplied relative path, refused if it could land outside the media dir."""
    pure = PurePosixPath(relative)
    parts = list(pure.parts)
    if pure.is_absolute() or not parts or any(p in ("", ".", "..") or "\\" in p or ":" in p for p in parts):
        raise DownloadError(f"the server listed an unsafe path: {relative!r}")
    return parts


# ------------------------------------------------------------------ manifest

def _manifest(device: Device, answer: DownloadAnswer, server: str, key_set_id: str, license_id: str,
              previous: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION, "content_id": answer.content_id, "scheme": answer.scheme,
        "quality": answer.quality, "status": "in_progress", "server": server, "download_id": answer.download_id,
        "key_set_id": key_set_id, "license_id": license_id, "estimated_bytes": answer.estimated_bytes,
        "bytes_per_hour": answer.bytes_per_hour,
        "started_at": (previous or {}).get("started_at") or device.now(), "completed_at": None,
        "renditions": [r.model_dump() for r in answer.renditions],
        "files": [{"path": f.path, "size": f.size, "track": f.track, "complete": False} for f in answer.files],
    }


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    path = directory / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


# -------------------------------------------------------------------- bytes

def _part_size(path: Path) -> int:
    part = path.with_name(path.name + ".part")
    return part.stat().st_size if part.is_file() else 0


def _complete(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


def _fetch(url: str, target: Path, size: int, on_progress: Callable[[int], None] | None,
           budget: list[int | None]) -> tuple[bool, int]:
    """Fetch one file into ``target`` via ``target.part``; return (resumed, bytes fetched)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    if target.exists():
        target.unlink()  # wrong size: fetch again
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    fetched = 0
    if have < size:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            response = urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as exc:
            code, message = _error(exc.read(), exc.headers.get(ERROR_CODE_HEADER), exc.code)
            raise (DownloadRefused(code, f"{target.name}: {message}") if exc.code < 500
                   else DownloadError(f"{target.name}: {code}: {message}")) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise TransportError(f"cannot reach {url.split('?')[0]}: {getattr(exc, 'reason', exc)}") from exc
        with response:
            if have and response.status != 206:
                have = 0  # the origin ignored the range: start over
            elif have and not (response.headers.get("Content-Range") or "").startswith(f"bytes {have}-"):
                raise DownloadError(f"{target.name}: the origin answered another range")
            fetched = _stream(response, part, append=bool(have), on_progress=on_progress, budget=budget)
    got = part.stat().st_size
    if got != size:
        raise DownloadError(f"{target.name}: got {got} bytes, expected {size}; run again to resume")
    part.replace(target)
    return have > 0, fetched


def _stream(response, part: Path, *, append: bool, on_progress: Callable[[int], None] | None,
            budget: list[int | None]) -> int:
    written = 0
    with part.open("ab" if append else "wb") as out:
        while True:
            want = CHUNK if budget[0] is None else min(CHUNK, budget[0])
            if want == 0:
                raise DownloadError("connection dropped (--interrupt-after); run again to resume")
            try:
                chunk = response.read(want)
            except OSError as exc:
                raise DownloadError(f"connection lost after {written} bytes; run again to resume") from exc
            if not chunk:
                return written
            out.write(chunk)
            written += len(chunk)
            if budget[0] is not None:
                budget[0] -= len(chunk)
            if on_progress:
                on_progress(len(chunk))
