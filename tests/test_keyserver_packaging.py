"""Real Shaka Packager 3.4.2 fetches its keys from our Widevine key API; then every license path works.

A real server process; shaka-packager with ``--enable_widevine_encryption
--key_server_url <server>/widevine/cenc/getcontentkey/widevine_test`` and the
tutorial's AES signing credentials, with and without ``--crypto_period_duration``.
Then: Clear Key answers, for every KID in the output, the key that decrypts it
(checked with our cenc decryptor and ffmpeg); a Widevine-style license gives an
L1 emulated device the keys; the device emulator downloads and plays offline.
"""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from device_emulator import media
from device_emulator.cdm.widevine import WidevineCdm
from device_emulator.device import Device, DeviceFlags
from license_server import packaging
from license_server.core.model import Hdcp, LicenseKind, SecurityLevel
from license_server.keyring import load_keyring
from license_server.media_kids import rendition_kids
from license_server.protocols.widevine import license_protocol_pb2 as pb
from tests.conftest import KEYS, ServerProcess
from tests.device_cli import device_json
from tests.keyserver_support import AES_IV, AES_KEY
from tests.media_support import require_media_tools

WIDEVINE = bytes.fromhex("edef8ba979d64acea3c827dcd51d21ed")
COMMON = bytes.fromhex("1077efecc0b24d02ace33c1e52e2fb4b")
PLAIN, ROTATED, PACKAGED = "ks-plain", "ks-rotated", "ks-movie"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    require_media_tools()
    return packaging.make_sample(tmp_path_factory.mktemp("ks-sample") / "sample.mp4", seconds=6)


@pytest.fixture(scope="module")
def media_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ks-media")


@pytest.fixture(scope="module")
def server(tmp_path_factory, media_root):
    process = ServerProcess(tmp_path_factory.mktemp("ks-server") / "data", "--test-clock",
                            "--media-dir", str(media_root))
    yield process
    process.stop()


def shaka(out: Path, sample: Path, server: ServerProcess, content_id: str, *extra: str) -> Path:
    """The tutorial's command with our URL (segmented output, no clear lead)."""
    out.mkdir(parents=True)
    streams = [f"in={sample},stream={kind},init_segment={kind}/init.mp4,segment_template={kind}/seg_$Number$.m4s"
               for kind in ("audio", "video")]
    result = subprocess.run(
        [packaging.find_packager(), *streams, "--enable_widevine_encryption",
         "--key_server_url", f"{server.url}/widevine/cenc/getcontentkey/widevine_test",
         "--content_id", content_id.encode().hex(), "--signer", "widevine_test",
         "--aes_signing_key", AES_KEY.hex(), "--aes_signing_iv", AES_IV.hex(),
         "--clear_lead", "0", "--segment_duration", "2", "--mpd_output", "manifest.mpd", *extra],
        cwd=out, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def plain(sample, server, tmp_path_factory) -> Path:
    return shaka(tmp_path_factory.mktemp("ks-out") / "plain", sample, server, PLAIN)


@pytest.fixture(scope="module")
def rotated(sample, server, tmp_path_factory) -> Path:
    return shaka(tmp_path_factory.mktemp("ks-out") / "rotated", sample, server, ROTATED,
                 "--crypto_period_duration", "2")


def rendition(out: Path, kind: str) -> tuple[Path, list[Path]]:
    segments = sorted((out / kind).glob("seg_*.m4s"), key=lambda p: int(p.stem.split("_")[1]))
    return out / kind / "init.mp4", segments


def pssh_boxes(data: bytes) -> list[tuple[bytes, list[bytes], bytes]]:
    """(system id, KIDs, data) of every pssh box anywhere in ``data``."""
    found, pos = [], 0
    while (pos := data.find(b"pssh", pos + 1)) > 0:
        version, body = data[pos + 4], pos + 8
        system, body = data[body:body + 16], body + 16
        kids = []
        if version > 0:
            count = struct.unpack_from(">I", data, body)[0]
            kids = [data[body + 4 + 16 * i:body + 20 + 16 * i] for i in range(count)]
            body += 4 + 16 * count
        size = struct.unpack_from(">I", data, body)[0]
        found.append((system, kids, data[body + 4:body + 4 + size]))
    return found


def output_kids(out: Path) -> set[bytes]:
    """Every KID the output names: tenc, seig, and the PSSH boxes (Widevine data and common KIDs)."""
    kids: set[bytes] = set()
    for kind in ("audio", "video"):
        init, segments = rendition(out, kind)
        kids.update(rendition_kids(init.read_bytes(), [s.read_bytes() for s in segments]))
        for path in (init, *segments):
            for system, _listed, data in pssh_boxes(path.read_bytes()):
                if system == WIDEVINE:
                    kids.update(pb.WidevinePsshData.FromString(data).key_ids)
    return kids


def media_kids(out: Path) -> set[bytes]:
    return {kid for kind in ("audio", "video") for kid in rendition_kids(
        rendition(out, kind)[0].read_bytes(), [s.read_bytes() for s in rendition(out, kind)[1]])}


def post_json(url: str, doc: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decrypt_and_decode(out: Path, decryptor: media.Decryptor, scratch: Path) -> dict[str, int]:
    frames: dict[str, int] = {}
    for kind in ("audio", "video"):
        init, segments = rendition(out, kind)
        clear = scratch / f"{out.name}-{kind}.mp4"
        clear.write_bytes(media.decrypt_rendition(init, segments, decryptor=decryptor))
        frames.update(media.decode_frames(clear))
    return frames


@pytest.mark.parametrize("name", ["plain", "rotated"])
def test_clear_key_answers_the_key_that_decrypts_every_kid_of_the_output(name, request, server, tmp_path):
    out = request.getfixturevalue(name)
    kids = output_kids(out)
    used = media_kids(out)
    assert used <= kids
    for kind in ("audio", "video"):  # one key per rendition; with 2-s periods, a key per period
        init, segments = rendition(out, kind)
        count = len(rendition_kids(init.read_bytes(), [s.read_bytes() for s in segments]))
        assert count == 1 if name == "plain" else count >= 2
    answer = post_json(server.url + "/clearkey/license", {"kids": [b64url(k) for k in sorted(kids)],
                                                            "type": "temporary"})
    keys = {base64.urlsafe_b64decode(k["kid"] + "=="): base64.urlsafe_b64decode(k["k"] + "==")
            for k in answer["keys"]}
    assert set(keys) == kids
    decrypted: list[bytes] = []

    def with_clear_key(kid: bytes, samples):
        decrypted.append(kid)
        return media.key_decryptor(keys.__getitem__)(kid, samples)

    frames = decrypt_and_decode(out, with_clear_key, tmp_path)
    assert frames["video"] == 150 and frames["audio"] > 0
    assert set(decrypted) == used


def test_rotated_output_carries_a_widevine_pssh_per_fragment(rotated):
    _, segments = rendition(rotated, "video")
    per_fragment = [next(pb.WidevinePsshData.FromString(d) for s, _, d in pssh_boxes(seg.read_bytes())
                         if s == WIDEVINE) for seg in segments]
    assert len(per_fragment) == len(segments) and len({tuple(p.key_ids) for p in per_fragment}) >= 2
    assert all(p.content_id == ROTATED.encode() for p in per_fragment)


def test_a_widevine_license_gives_an_l1_device_the_keys(plain, server, tmp_path):
    keyring = load_keyring(KEYS)
    device = Device.create(tmp_path / "l1", keyring, model=keyring.default_model(SecurityLevel.L1),
                           flags=DeviceFlags(), max_hdcp=Hdcp.V2_2)
    init, _ = rendition(plain, "video")
    header = next(pb.WidevinePsshData.FromString(d) for s, _, d in pssh_boxes(init.read_bytes()) if s == WIDEVINE)
    assert header.content_id == PLAIN.encode()
    cdm = WidevineCdm(device)
    pending = cdm.build_challenge(header.content_id.decode(), LicenseKind.TEMPORARY, key_ids=tuple(header.key_ids),
                                  privacy=False)
    request = urllib.request.Request(server.url + "/widevine/license", data=pending.body)
    with urllib.request.urlopen(request, timeout=30) as response:
        loaded = cdm.process_license(pending, response.read())
    loaded_kids = {info.kid for info in device.tee.key_info(loaded.handle)}
    assert media_kids(plain) <= loaded_kids
    frames = decrypt_and_decode(plain, media.tee_decryptor(device.tee, loaded.handle), tmp_path)
    assert frames["video"] == 150


def test_the_device_emulator_downloads_and_plays_key_server_content_offline(sample, server, media_root, tmp_path):
    key_server = packaging.KeyServer(f"{server.url}/widevine/cenc/getcontentkey/widevine_test", PACKAGED)
    result = packaging.package(sample, content_id=PACKAGED, out=media_root, scheme="cenc", keyring=None,
                               key_server=key_server)
    assert {r["track"] for r in result.manifest["renditions"]} == {"AUDIO", "SD", "HD"}
    device = tmp_path / "phone"
    device_json("create", str(device), "--keys", str(KEYS), "--json")
    downloaded = device_json("download", str(device), "--server", server.url, "--content", PACKAGED,
                             "--system", "widevine", "--json")
    assert downloaded["status"] == "complete"
    played = device_json("play", str(device), "--content", PACKAGED, "--offline", "--json")
    assert played["decision"] == "play" and played["media"]["decrypted_in"] == "tee"
    assert played["media"]["frames_decoded"] == played["media"]["samples_decrypted"] > 0


def test_the_device_emulator_downloads_and_decrypts_rotated_content(sample, server, media_root, tmp_path):
    content = "ks-rotated-dl"
    key_server = packaging.KeyServer(f"{server.url}/widevine/cenc/getcontentkey/widevine_test", content,
                                     crypto_period=2)
    result = packaging.package(sample, content_id=content, out=media_root, scheme="cenc", keyring=None,
                               key_server=key_server)
    kids = {r["track"]: r.get("kids", [r["kid"]]) for r in result.manifest["renditions"]}
    assert all(len(k) >= 2 for k in kids.values()), kids  # a key per 2-s period
    device = tmp_path / "phone"
    device_json("create", str(device), "--keys", str(KEYS), "--json")
    downloaded = device_json("download", str(device), "--server", server.url, "--content", content,
                             "--system", "widevine", "--json")
    assert downloaded["status"] == "complete"
    played = device_json("play", str(device), "--content", content, "--offline", "--json")
    assert played["decision"] == "play", played
    media_facts = played["media"]
    assert media_facts["frames_decoded"] == media_facts["samples_decrypted"] > 0
    assert {r["track"] for r in media_facts["renditions"]} == {"AUDIO", "SD"}


def test_license_server_package_drives_shaka_packager_against_our_key_api(sample, server, tmp_path):
    out = tmp_path / "cli-out"
    url = f"{server.url}/widevine/cenc/getcontentkey/widevine_test"
    result = subprocess.run([sys.executable, "-m", "license_server.cli", "package", str(sample), "--content", "ks-cli",
                             "--out", str(out), "--key-server", url, "--crypto-period", "2", "--json"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads(result.stdout)
    assert (out / "ks-cli" / "cenc" / "package.json").is_file()
    kids = {bytes.fromhex(k) for r in manifest["renditions"] for k in r["kids"]}
    assert len(kids) >= 6
    answer = post_json(server.url + "/clearkey/license", {"kids": [b64url(k) for k in sorted(kids)],
                                                            "type": "temporary"})
    assert len(answer["keys"]) == len(kids)


@pytest.mark.parametrize("args,message", [
    (["--content", "x", "--crypto-period", "2"], "--crypto-period needs --key-server"),
    (["--content", "has space", "--key-server", "http://127.0.0.1:9/k"], "printable ASCII"),
])
def test_package_key_server_usage_errors(sample, tmp_path, args, message):
    result = subprocess.run([sys.executable, "-m", "license_server.cli", "package", str(sample), "--out",
                             str(tmp_path), *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.parametrize("marker", ["--enable_widevine_encryption", "--enable_playready_encryption"])
def test_the_documented_packager_commands_work_as_written(marker, sample, server, tmp_path):
    """docs/key-server.md's shaka-packager commands, with only the server's port and the clip's path changed."""
    import shlex

    doc = (Path(__file__).resolve().parent.parent / "docs" / "key-server.md").read_text(encoding="utf-8")
    block = next(b for b in doc.split("```sh\n")[1:] if b.startswith("packager") and marker in b.split("```")[0])
    words = shlex.split(block.split("```")[0].replace("\\\n", " "))
    words = [w.replace("http://127.0.0.1:8080", server.url).replace("sample.mp4", str(sample)) for w in words]
    result = subprocess.run([packaging.find_packager(), *words[1:]], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "manifest.mpd").is_file()
