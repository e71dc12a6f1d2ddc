"""The media origin: presigned URLs, POST /downloads refusals, Range, path safety."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from urllib.parse import quote

import pytest

from license_server import crypto, presign
from license_server.core.model import LicenseKind
from license_server.errors import DrmError, ErrorCode
from license_server.media_library import MediaLibrary
from license_server.settings import Settings
from tests.conftest import KEYS
from tests.media_support import CONTENT, fake_package

CODE = "X-DRM-Error-Code"
SECRET = b"k" * 32


# ------------------------------------------------------------------ presign

def test_sign_and_verify_round_trip() -> None:
    signed = presign.sign(SECRET, "/media/demo-movie/cenc/sd/seg_1.m4s", 1000)
    assert signed.url.startswith("/media/demo-movie/cenc/sd/seg_1.m4s?exp=1000&sig=")
    assert "=" not in signed.signature and len(signed.signature) == 43
    assert presign.verify(SECRET, signed.path, "1000", signed.signature, now=999) == 1000


def test_verify_refuses_expired_url() -> None:
    signed = presign.sign(SECRET, "/media/a/cenc/x", 1000)
    with pytest.raises(DrmError) as info:
        presign.verify(SECRET, signed.path, "1000", signed.signature, now=1000)
    assert info.value.code is ErrorCode.URL_EXPIRED


@pytest.mark.parametrize("path, exp, sig_change", [
    ("/media/a/cenc/y", "1000", None),  # another file
    ("/media/a/cenc/x", "2000", None),  # extended expiry
    ("/media/a/cenc/x", "1000", "flip"),  # tampered signature
    ("/media/a/cenc/x", "1000", "other-secret"),
    ("/media/a/cenc/x", None, None),  # missing exp
    ("/media/a/cenc/x", "1000", "missing"),
    ("/media/a/cenc/x", "1000", "padded"),
    ("/media/a/cenc/x", "-5", None),
    ("/media/a/cenc/x", "1000", "garbage"),
])
def test_verify_refuses_tampering(path: str, exp: str | None, sig_change: str | None) -> None:
    sig = presign.sign(SECRET, "/media/a/cenc/x", 1000).signature
    if sig_change == "flip":
        sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    elif sig_change == "other-secret":
        sig = presign.sign(b"z" * 32, "/media/a/cenc/x", 1000).signature
    elif sig_change == "missing":
        sig = None
    elif sig_change == "padded":
        sig = sig + "="
    elif sig_change == "garbage":
        sig = "%%%not base64%%%"
    with pytest.raises(DrmError) as info:
        presign.verify(SECRET, path, exp, sig, now=10)
    assert info.value.code is ErrorCode.URL_SIGNATURE_INVALID


def test_verify_uses_the_constant_time_helper(monkeypatch) -> None:
    calls = []
    real = crypto.hmac_sha256_verify

    def spy(key: bytes, data: bytes, tag: bytes) -> None:
        calls.append(data)
        real(key, data, tag)

    monkeypatch.setattr(crypto, "hmac_sha256_verify", spy)
    signed = presign.sign(SECRET, "/media/a/cenc/x", 1000)
    presign.verify(SECRET, signed.path, "1000", signed.signature, now=1)
    assert calls == [b"GET\n/media/a/cenc/x\n1000"]


# ------------------------------------------------------------ path safety

def test_library_resolve_refuses_escapes(tmp_path: Path) -> None:
    root = tmp_path / "media"
    fake_package(root)
    (tmp_path / "secret.txt").write_text("server secret")
    os.symlink(tmp_path / "secret.txt", root / CONTENT / "cenc" / "link.m4s")
    os.symlink(root / CONTENT / "cenc" / "sd" / "init.mp4", root / CONTENT / "cenc" / "inside.mp4")
    library = MediaLibrary(root)
    assert library.resolve([CONTENT, "cenc", "sd", "init.mp4"]).is_file()
    assert library.resolve([CONTENT, "cenc", "inside.mp4"]).is_file()  # a symlink that stays inside is fine
    for parts in (["..", "secret.txt"], [CONTENT, "cenc", "link.m4s"], ["", "etc", "passwd"], ["/etc/passwd"],
                  [CONTENT, "cenc", "sd"], [CONTENT, "..", "..", "secret.txt"], ["a\x00b"], ["..\\secret.txt"],
                  [CONTENT, "cenc", "missing.m4s"], [CONTENT, ".", "cenc", "sd", "init.mp4"]):
        with pytest.raises(DrmError) as info:
            library.resolve(parts)
        assert info.value.code is ErrorCode.MEDIA_NOT_FOUND, parts


# --------------------------------------------------------------- fixtures

@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    fake_package(root)
    return root


@pytest.fixture
def settings(tmp_path: Path, media_root: Path) -> Settings:
    return Settings(data_dir=tmp_path / "server-data", keys_dir=KEYS, test_clock=True, media_dir=media_root)


@pytest.fixture
async def phone(make_device, widevine):
    """An L1 phone holding a persistent license for demo-movie."""
    device = make_device("L1")
    status, _, loaded, _ = await widevine.acquire(device, CONTENT, LicenseKind.PERSISTENT)
    assert status == 200, loaded
    return device, loaded.license_id


def body(device, license_id: str, **extra) -> dict:
    return {"device_id": device.device_id, "content_id": CONTENT, "license_id": license_id, **extra}


def secret_of(settings: Settings) -> bytes:
    return settings.url_signing_key_path.read_bytes()


# ----------------------------------------------------------- POST /downloads

async def test_download_authorized_for_a_premium_phone(client, phone, store, media_root, settings, caplog) -> None:
    device, license_id = phone
    response = await client.post("/downloads", json=body(device, license_id, tier="premium", account="alice"))
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert [f["path"] for f in answer["files"]] == [
        "audio/init.mp4", "audio/seg_1.m4s", "audio/seg_2.m4s", "sd/init.mp4", "sd/seg_1.m4s", "sd/seg_2.m4s"]
    package_dir = media_root / CONTENT / "cenc"
    for entry in answer["files"]:
        assert entry["size"] == (package_dir / entry["path"]).stat().st_size
        assert entry["url"].startswith(f"/media/{CONTENT}/cenc/{entry['path']}?exp={answer['expires_at']}&sig=")
        assert entry["track"] == entry["path"].split("/")[0].upper()
    assert answer["estimated_bytes"] == sum(f["size"] for f in answer["files"])
    audio = sum(f["size"] for f in answer["files"] if f["track"] == "AUDIO")
    sd = answer["estimated_bytes"] - audio
    assert answer["bytes_per_hour"] == round(audio * 3600 / 4.0) + round(sd * 3600 / 4.0)
    assert answer["expires_at"] == 1_800_000_000 + 3600
    assert [r["track"] for r in answer["renditions"]] == ["AUDIO", "SD"]
    rows = store.downloads(device_id=device.device_id)
    assert len(rows) == 1 and rows[0]["tier"] == "premium" and rows[0]["account"] == "alice"
    assert rows[0]["license_id"] == license_id and rows[0]["files"] == 6
    assert stat.S_IMODE(settings.url_signing_key_path.stat().st_mode) == 0o600
    secret = secret_of(settings)
    assert secret.hex() not in caplog.text and answer["files"][0]["url"].split("sig=")[1] not in caplog.text
    # every URL serves exactly the packaged bytes
    for entry in answer["files"]:
        got = await client.get(entry["url"])
        assert got.status == 200
        assert await got.read() == (package_dir / entry["path"]).read_bytes()
        assert got.headers["Accept-Ranges"] == "bytes"


async def test_high_quality_lists_hd(client, phone) -> None:
    device, license_id = phone
    answer = await (await client.post("/downloads", json=body(device, license_id, quality="high"))).json()
    assert {f["track"] for f in answer["files"]} == {"AUDIO", "HD"}


async def refused(client, payload, status: int, code: ErrorCode, store=None) -> dict:
    response = await client.post("/downloads", data=payload if isinstance(payload, bytes) else json.dumps(payload))
    assert response.status == status, await response.text()
    assert response.headers[CODE] == code.value
    data = await response.json()
    assert data["error"]["code"] == code.value
    if store is not None:
        assert store.downloads() == []
    return data


async def test_laptop_is_refused_by_device_type(client, make_device, widevine, store) -> None:
    laptop = make_device(model="emulated-laptop-l3")
    status, _, loaded, _ = await widevine.acquire(laptop, CONTENT, LicenseKind.TEMPORARY)
    assert status == 200
    await refused(client, body(laptop, loaded.license_id), 403, ErrorCode.DEVICE_TYPE_NOT_ALLOWED, store)


async def test_tablet_is_allowed(client, make_device, widevine) -> None:
    tablet = make_device(model="emulated-tablet-l1")
    _, _, loaded, _ = await widevine.acquire(tablet, CONTENT, LicenseKind.PERSISTENT)
    assert (await client.post("/downloads", json=body(tablet, loaded.license_id))).status == 200


@pytest.mark.parametrize("tier", ["basic", "ad-supported", "free"])
async def test_tier_without_download_rights_is_refused(client, phone, store, tier: str) -> None:
    """rights.json: basic has no download rights; a tier it does not list has none either."""
    device, license_id = phone
    await refused(client, body(device, license_id, tier=tier), 403, ErrorCode.TIER_NOT_ALLOWED, store)


@pytest.mark.parametrize("tier", ["premium", "standard", "ads"])
async def test_tiers_with_download_rights_are_authorized(client, phone, tier: str) -> None:
    device, license_id = phone
    assert (await client.post("/downloads", json=body(device, license_id, tier=tier))).status == 200


async def test_unknown_device_content_and_license(client, phone, store) -> None:
    device, license_id = phone
    await refused(client, {**body(device, license_id), "device_id": "ab" * 16}, 404, ErrorCode.DEVICE_NOT_FOUND, store)
    await refused(client, {**body(device, license_id), "content_id": "no-such-title"}, 404,
                  ErrorCode.CONTENT_NOT_FOUND, store)
    await refused(client, {**body(device, license_id), "content_id": "stream-only"}, 403,
                  ErrorCode.OFFLINE_NOT_ALLOWED, store)
    await refused(client, body(device, "cd" * 16), 404, ErrorCode.LICENSE_NOT_FOUND, store)
    await refused(client, {**body(device, license_id), "content_id": "demo-episode"}, 404,
                  ErrorCode.LICENSE_NOT_FOUND, store)


async def test_license_of_another_device_is_refused(client, phone, make_device, widevine, store) -> None:
    _, license_id = phone
    other = make_device("L1")
    await widevine.acquire(other, CONTENT, LicenseKind.PERSISTENT)
    await refused(client, body(other, license_id), 404, ErrorCode.LICENSE_NOT_FOUND, store)


async def test_temporary_license_is_not_enough(client, make_device, widevine, store) -> None:
    device = make_device("L1")
    _, _, loaded, _ = await widevine.acquire(device, CONTENT, LicenseKind.TEMPORARY)
    await refused(client, body(device, loaded.license_id), 403, ErrorCode.PERSISTENT_LICENSE_REQUIRED, store)


async def test_expired_license_is_refused(client, phone, clock, store) -> None:
    device, license_id = phone
    clock.advance(31 * 86400)  # past the 30-day storage window
    await refused(client, body(device, license_id), 403, ErrorCode.LICENSE_EXPIRED, store)


async def test_released_license_is_refused(client, phone, clock, store) -> None:
    device, license_id = phone
    store.record_lifecycle(license_id, event="release", state="released", now=clock.now(), system="widevine",
                           released=True, message="released by the device")
    await refused(client, body(device, license_id), 403, ErrorCode.LICENSE_RELEASED, store)


async def test_unpackaged_scheme_or_rung(client, phone, store, media_root) -> None:
    device, license_id = phone
    await refused(client, body(device, license_id, scheme="cbcs"), 404, ErrorCode.MEDIA_NOT_PACKAGED, store)
    fake_package(media_root, scheme="cbcs", tracks=("AUDIO", "SD"))
    await refused(client, body(device, license_id, scheme="cbcs", quality="high"), 404,
                  ErrorCode.MEDIA_NOT_PACKAGED, store)
    (media_root / CONTENT / "cbcs" / "sd" / "seg_2.m4s").unlink()
    await refused(client, body(device, license_id, scheme="cbcs"), 404, ErrorCode.MEDIA_NOT_PACKAGED, store)


@pytest.mark.parametrize("payload", [
    b"not json", b"[]", b"{}", b'{"device_id": 5}',
    json.dumps({"device_id": "ab" * 16, "content_id": CONTENT, "license_id": "cd" * 16, "quality": "4k"}).encode(),
    json.dumps({"device_id": "ab" * 16, "content_id": CONTENT, "license_id": "cd" * 16, "scheme": "cens"}).encode(),
    json.dumps({"device_id": "ab" * 16, "content_id": "../etc", "license_id": "cd" * 16}).encode(),
    json.dumps({"device_id": "ab" * 16, "content_id": CONTENT, "license_id": "cd" * 16, "extra": 1}).encode(),
])
async def test_malformed_download_requests(client, store, payload: bytes) -> None:
    await refused(client, payload, 400, ErrorCode.MALFORMED_CHALLENGE, store)


# ---------------------------------------------------------------- GET /media

@pytest.fixture
async def signed(client, phone):
    device, license_id = phone
    answer = await (await client.post("/downloads", json=body(device, license_id))).json()
    return answer["files"][1]  # audio/seg_1.m4s


async def test_media_needs_a_valid_signature(client, signed, clock) -> None:
    url = signed["url"]
    path, query = url.split("?")
    for bad in (path, f"{path}?exp={query.split('&')[0][4:]}", url[:-2] + ("AA" if not url.endswith("AA") else "BB"),
                url.replace("seg_1", "seg_2"), url.replace("exp=", "exp=1")):
        response = await client.get(bad)
        assert response.status == 403, bad
        assert response.headers[CODE] == ErrorCode.URL_SIGNATURE_INVALID.value
    clock.advance(3600)
    response = await client.get(url)
    assert response.status == 403 and response.headers[CODE] == ErrorCode.URL_EXPIRED.value


async def test_range_requests(client, signed, media_root) -> None:
    data = (media_root / CONTENT / "cenc" / signed["path"]).read_bytes()
    size = len(data)
    cases = {"bytes=0-99": (0, 99), "bytes=-100": (size - 100, size - 1), "bytes=100-": (100, size - 1),
             f"bytes=10-{size + 50}": (10, size - 1), "bytes=0-0": (0, 0)}
    for header, (first, last) in cases.items():
        response = await client.get(signed["url"], headers={"Range": header})
        assert response.status == 206, header
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert await response.read() == data[first:last + 1]
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0", "bytes=50-10", "bytes=0-1,5-9",
                   "items=0-5", "bytes=abc"):
        response = await client.get(signed["url"], headers={"Range": header})
        assert response.status == 416, header
        assert response.headers["Content-Range"] == f"bytes */{size}"
        assert response.headers[CODE] == ErrorCode.RANGE_NOT_SATISFIABLE.value
    head = await client.head(signed["url"])
    assert head.status == 200 and int(head.headers["Content-Length"]) == size


async def raw_get(client, target: str) -> tuple[int, bytes]:
    """Send a request line exactly as written (no client-side normalisation)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    reply = await reader.read()
    writer.close()
    status = int(reply.split(b" ", 2)[1])
    return status, reply


async def test_traversal_is_refused_even_when_signed(client, signed, settings, tmp_path, media_root) -> None:
    secret = secret_of(settings)
    (tmp_path / "outside.txt").write_text("TOP SECRET OUTSIDE")
    os.symlink(tmp_path / "outside.txt", media_root / CONTENT / "cenc" / "escape.m4s")
    exp = 1_800_000_000 + 600
    attempts = {
        "/media/../outside.txt": "/media/../outside.txt",
        f"/media/{CONTENT}/cenc/../../../outside.txt": f"/media/{CONTENT}/cenc/../../../outside.txt",
        f"/media/{CONTENT}/cenc/%2e%2e/%2e%2e/%2e%2e/outside.txt": f"/media/{CONTENT}/cenc/../../../outside.txt",
        f"/media/{CONTENT}/cenc/..%2f..%2f..%2foutside.txt": f"/media/{CONTENT}/cenc/../../../outside.txt",
        f"/media/{CONTENT}/cenc/escape.m4s": f"/media/{CONTENT}/cenc/escape.m4s",
        "/media//" + quote(str(tmp_path / "outside.txt").lstrip("/")):
            "/media//" + str(tmp_path / "outside.txt").lstrip("/"),
        "/media/" + quote(str(tmp_path / "outside.txt"), safe=""): "/media/" + str(tmp_path / "outside.txt"),
        "/media/server-data/media-url-signing.key": "/media/server-data/media-url-signing.key",
    }
    for target, signed_path in attempts.items():
        sig = presign.sign(secret, signed_path, exp).signature
        status, reply = await raw_get(client, f"{target}?exp={exp}&sig={sig}")
        # the signature is valid, so this is the path guard speaking
        assert status == 404 and b"MEDIA_NOT_FOUND" in reply, (target, reply[:300])
        assert b"TOP SECRET" not in reply and secret not in reply


async def test_a_download_in_a_namespace_hands_out_urls_that_keep_it(client, make_device, media_root) -> None:
    """Issue 15: presigned URLs minted in /ns/x carry the prefix and are bound to it (the signature covers it)."""
    from tests.conftest import WidevineExchange

    device = make_device("L1")
    status, _, loaded, _ = await WidevineExchange(client, "/ns/x/widevine/license").acquire(
        device, CONTENT, LicenseKind.PERSISTENT)
    assert status == 200
    refused = await client.post("/downloads", json=body(device, loaded.license_id))  # default never saw it
    assert refused.status == 404 or refused.headers[CODE] in ("LICENSE_NOT_FOUND", "DEVICE_NOT_FOUND")
    response = await client.post("/ns/x/downloads", json=body(device, loaded.license_id))
    assert response.status == 200, await response.text()
    url = (await response.json())["files"][0]["url"]
    assert url.startswith(f"/ns/x/media/{CONTENT}/cenc/")
    assert (await client.get(url)).status == 200
    moved = await client.get(url.removeprefix("/ns/x"))  # the same signature outside the namespace
    assert moved.status == 403 and moved.headers[CODE] == "URL_SIGNATURE_INVALID"
    other = await client.get("/ns/y" + url.removeprefix("/ns/x"))
    assert other.status == 403 and other.headers[CODE] == "URL_SIGNATURE_INVALID"
