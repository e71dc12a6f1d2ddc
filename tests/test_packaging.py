"""``license-server package`` with the real tools (ffmpeg, Shaka Packager) on the sample clip.

These tests need ffmpeg and shaka-packager (``.ci/setup`` installs both). A
missing tool is a failure with the tool's install hint, not a skip; set
``DRM_SKIP_PACKAGING=1`` to skip them on a machine without the tools.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from license_server import packaging
from license_server import packaging_signalling as signalling
from license_server.cli import main as cli_main
from license_server.core.model import Track
from license_server.protocols.widevine import license_protocol_pb2 as pb

pytestmark = pytest.mark.skipif(os.environ.get("DRM_SKIP_PACKAGING") == "1", reason="DRM_SKIP_PACKAGING=1")

PROJECT = Path(__file__).resolve().parent.parent
KEYS = PROJECT / "keys"
COMMON = "1077efecc0b24d02ace33c1e52e2fb4b"
WIDEVINE = "edef8ba979d64acea3c827dcd51d21ed"
PLAYREADY = "9a04f07998404286ab92e65be0885f95"
LICENSE_URL = "http://127.0.0.1:8080/clearkey/license"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "license_server.cli", *args], capture_output=True, text=True,
                          timeout=300)


# ------------------------------------------------------------ mp4 box walker

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"sinf", b"schi", b"mvex", b"edts"}


def boxes(data: bytes, start: int = 0, end: int | None = None):
    """Yield (type, payload) for the boxes in data[start:end], descending into containers and stsd."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        payload = data[pos + header:pos + size]
        yield kind, payload
        if kind in CONTAINERS:
            yield from boxes(data, pos + header, pos + size)
        elif kind == b"stsd":
            yield from boxes(data, pos + header + 8, pos + size)
        elif kind in (b"encv", b"enca"):
            skip = 78 if kind == b"encv" else 28
            yield from boxes(data, pos + header + skip, pos + size)
        pos += size


def pssh_boxes(init: bytes) -> dict[str, list[tuple[int, list[bytes], bytes]]]:
    """system id hex -> [(version, kids, data)]."""
    found: dict[str, list] = {}
    for kind, payload in boxes(init):
        if kind != b"pssh":
            continue
        version = payload[0]
        system = payload[4:20].hex()
        pos, kids = 20, []
        if version > 0:
            count = struct.unpack(">I", payload[pos:pos + 4])[0]
            kids = [payload[pos + 4 + 16 * i:pos + 20 + 16 * i] for i in range(count)]
            pos += 4 + 16 * count
        size = struct.unpack(">I", payload[pos:pos + 4])[0]
        found.setdefault(system, []).append((version, kids, payload[pos + 4:pos + 4 + size]))
    return found


def first(init: bytes, kind: bytes) -> bytes:
    return next(payload for k, payload in boxes(init) if k == kind)


def mdat(segment: bytes) -> bytes:
    return b"".join(payload for kind, payload in boxes(segment) if kind == b"mdat")


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "sample.mp4"
    result = cli("package", "--sample", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def packaged(sample, tmp_path_factory) -> Path:
    """OUT with demo-movie packaged in cenc (with a license URL) and cbcs."""
    out = tmp_path_factory.mktemp("packaged")
    for scheme, extra in (("cenc", ["--license-server", LICENSE_URL]), ("cbcs", [])):
        result = cli("package", str(sample), "--content", "demo-movie", "--out", str(out), "--scheme", scheme,
                     "--keys", str(KEYS), *extra)
        assert result.returncode == 0, result.stderr
        assert f"packaged demo-movie ({scheme})" in result.stdout
    return out


@pytest.fixture(scope="module")
def catalog_keys():
    from license_server.keyring import load_keyring

    return packaging.title_keys(load_keyring(KEYS), "demo-movie")


# --------------------------------------------------------------------- tests

def test_sample_is_a_clear_640x360_h264_aac_clip(sample):
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                            "-show_entries", "format=duration", "-of", "json", str(sample)],
                           capture_output=True, text=True, check=True)
    doc = json.loads(probe.stdout)
    codecs = {s["codec_name"]: s for s in doc["streams"]}
    assert codecs["h264"]["width"] == 640 and codecs["h264"]["height"] == 360
    assert "aac" in codecs
    assert 9.5 <= float(doc["format"]["duration"]) <= 10.5


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
def test_layout_contract(packaged, catalog_keys, scheme):
    base = packaged / "demo-movie" / scheme
    assert (base / "manifest.mpd").is_file() and (base / "master.m3u8").is_file()
    doc = json.loads((base / "package.json").read_text())
    assert doc["content_id"] == "demo-movie" and doc["scheme"] == scheme
    assert doc["created_by"] == "license-server package"
    assert [r["track"] for r in doc["renditions"]] == ["AUDIO", "SD", "HD"]
    for rendition in doc["renditions"]:
        track = Track(rendition["track"])
        name = track.value.lower()
        assert rendition["kid"] == catalog_keys[track][0].hex()
        assert rendition["init"] == f"{name}/init.mp4"
        assert rendition["segments"] == [f"{name}/seg_{i}.m4s" for i in range(1, len(rendition["segments"]) + 1)]
        assert len(rendition["segments"]) == 5
        assert 9.5 <= rendition["duration"] <= 10.5 and rendition["bandwidth"] > 50_000
        assert set(rendition["sizes"]) == {rendition["init"], *rendition["segments"]}
        for path, size in rendition["sizes"].items():
            assert (base / path).stat().st_size == size
        assert (base / name / "playlist.m3u8").is_file()
    bandwidth = {r["track"]: r["bandwidth"] for r in doc["renditions"]}
    assert bandwidth["HD"] > bandwidth["SD"] > bandwidth["AUDIO"]
    assert not [p.name for p in (packaged / "demo-movie").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
def test_init_segments_carry_pssh_for_clear_key_widevine_and_playready(packaged, catalog_keys, scheme):
    kids = {kid for kid, _ in catalog_keys.values()}
    for track, (kid, _) in catalog_keys.items():
        init = (packaged / "demo-movie" / scheme / track.value.lower() / "init.mp4").read_bytes()
        found = pssh_boxes(init)
        assert {COMMON, WIDEVINE, PLAYREADY} <= set(found)
        [(version, common_kids, data)] = found[COMMON]
        assert version == 1 and set(common_kids) == kids and data == b""
        widevine = pb.WidevinePsshData.FromString(found[WIDEVINE][0][2])
        assert set(widevine.key_ids) == kids
        playready = found[PLAYREADY][0][2]
        assert "WRMHEADER".encode("utf-16-le") in playready
        assert first(init, b"schm")[4:8] == scheme.encode()
        tenc = first(init, b"tenc")
        assert tenc[8:24] == kid  # default_KID of this rendition


def test_mpd_signals_every_system_and_the_dashif_clear_key_license_url(packaged):
    cenc = (packaged / "demo-movie" / "cenc" / "manifest.mpd").read_text()
    # The common-system (1077efec) PSSH is in the init segments only: dash.js cannot use it from the MPD.
    assert signalling.mpd_system_ids(cenc) == {"e2719d58-a985-b3c9-781a-b030af78d30e",
                                               "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",
                                               "9a04f079-9840-4286-ab92-e65be0885f95"}
    assert cenc.count(f"<dashif:Laurl>{LICENSE_URL}</dashif:Laurl>") == 3
    assert cenc.count("<clearkey:Laurl") == 3
    cbcs = (packaged / "demo-movie" / "cbcs" / "manifest.mpd").read_text()
    assert "e2719d58-a985-b3c9-781a-b030af78d30e" in cbcs and "Laurl" not in cbcs


def test_hls_has_fairplay_skd_uris_for_cbcs_only(packaged, catalog_keys):
    master = (packaged / "demo-movie" / "cbcs" / "master.m3u8").read_text()
    assert "sd/playlist.m3u8" in master and "hd/playlist.m3u8" in master and 'URI="audio/playlist.m3u8"' in master
    for track, (kid, _) in catalog_keys.items():
        playlist = (packaged / "demo-movie" / "cbcs" / track.value.lower() / "playlist.m3u8").read_text()
        fairplay = [line for line in playlist.splitlines() if "com.apple.streamingkeydelivery" in line]
        assert fairplay == [f'#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://{kid.hex()}",KEYFORMATVERSIONS="1",'
                            f'KEYFORMAT="com.apple.streamingkeydelivery"']
        assert signalling.FAIRPLAY_KEY_URI_PLACEHOLDER not in playlist and 'KEYFORMAT="identity"' not in playlist
        assert "seg_1.m4s" in playlist and '#EXT-X-MAP:URI="init.mp4"' in playlist
        cenc = (packaged / "demo-movie" / "cenc" / track.value.lower() / "playlist.m3u8").read_text()
        assert "skd://" not in cenc and "SAMPLE-AES-CTR" in cenc


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
def test_hls_media_playlists_carry_a_clear_key_line_with_the_kid(packaged, catalog_keys, scheme):
    method = "SAMPLE-AES-CTR" if scheme == "cenc" else "SAMPLE-AES"
    for track, (kid, _) in catalog_keys.items():
        playlist = (packaged / "demo-movie" / scheme / track.value.lower() / "playlist.m3u8").read_text()
        keys = [line for line in playlist.splitlines() if line.startswith("#EXT-X-KEY:")]
        assert keys[0] == signalling.clearkey_key_line(kid, method)
        assert f"KEYID=0x{kid.hex()}" in keys[0] and 'KEYFORMAT="org.w3.clearkey"' in keys[0]
        assert not [line for line in keys if 'KEYFORMAT="identity"' in line or "KEYFORMAT=" not in line]
        assert any("edef8ba9-79d6-4ace-a3c8-27dcd51d21ed" in line for line in keys)  # Widevine kept
        assert any("com.microsoft.playready" in line for line in keys)  # PlayReady kept


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
def test_encrypted_segments_differ_from_the_clear_ones(sample, catalog_keys, tmp_path, scheme):
    inputs = packaging.prepare_renditions(sample, tmp_path / "work")
    packaging.run_packager(inputs, tmp_path / "clear", keys=None)
    packaging.run_packager(inputs, tmp_path / "enc", keys=catalog_keys, scheme=scheme)
    assert not pssh_boxes((tmp_path / "clear" / "sd" / "init.mp4").read_bytes())
    for name in ("audio", "sd", "hd"):
        for number in (1, 3):
            clear = mdat((tmp_path / "clear" / name / f"seg_{number}.m4s").read_bytes())
            encrypted = mdat((tmp_path / "enc" / name / f"seg_{number}.m4s").read_bytes())
            assert len(clear) == len(encrypted) > 1000  # CENC keeps sample sizes
            differing = sum(a != b for a, b in zip(clear, encrypted))
            assert differing > len(clear) // (40 if scheme == "cbcs" else 2), (name, number, differing)


def test_unknown_content_is_refused_with_the_catalog_titles(sample, tmp_path):
    result = cli("package", str(sample), "--content", "nope", "--out", str(tmp_path), "--keys", str(KEYS))
    assert result.returncode == 1
    assert "'nope' is not in the catalog" in result.stderr and "demo-movie" in result.stderr
    assert not list(tmp_path.iterdir())


def test_source_without_audio_is_refused_and_leaves_nothing(tmp_path):
    silent = tmp_path / "silent.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:duration=2", "-c:v",
                    "libx264", "-preset", "ultrafast", str(silent)], check=True)
    out = tmp_path / "out"
    result = cli("package", str(silent), "--content", "demo-movie", "--out", str(out), "--keys", str(KEYS))
    assert result.returncode == 1 and "has no audio stream" in result.stderr
    assert list((out / "demo-movie").iterdir()) == []


def test_usage_errors():
    runner = CliRunner()
    result = runner.invoke(cli_main, ["package", "--out", "x"])
    assert result.exit_code == 2 and "SOURCE and --content are required" in result.output
    result = runner.invoke(cli_main, ["package", "--sample", "--content", "demo-movie", "--out", "x.mp4"])
    assert result.exit_code == 2


def test_missing_tools_give_a_one_line_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(packaging.PACKAGER_ENV, raising=False)
    monkeypatch.setattr(packaging, "NODE_MODULES_DIRS", (tmp_path / "node_modules",))
    with pytest.raises(packaging.ToolMissing, match=r"^ffmpeg not found: apt-get install ffmpeg$"):
        packaging.find_ffmpeg()
    with pytest.raises(packaging.ToolMissing, match="^shaka-packager not found: npm install shaka-packager"):
        packaging.find_packager()
    result = CliRunner().invoke(cli_main, ["package", "--sample", "--out", str(tmp_path / "s.mp4")])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: ffmpeg not found: apt-get install ffmpeg"


def test_packager_lookup_order(monkeypatch, tmp_path):
    fake = tmp_path / "my-packager"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv(packaging.PACKAGER_ENV, str(fake))
    assert packaging.find_packager() == str(fake)
    monkeypatch.delenv(packaging.PACKAGER_ENV)
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "packager").write_text("#!/bin/sh\n")
    (tmp_path / "packager").chmod(0o755)
    assert packaging.find_packager() == str(tmp_path / "packager")
