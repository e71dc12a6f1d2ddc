"""`device-emulator play --offline` of a downloaded title decrypts it in the TEE and decodes it.

Real packaged media (cenc and cbcs, tests/media_support.py), a real server
process with a media origin, downloads with the license of each dialect, and
ffmpeg as the decoder. A wrong key is a clear WRONG_KEY refusal; a license
that does not load, an expired or removed license never reaches decryption.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from device_emulator.device import Device
from device_emulator.offline import playback
from license_server.keyring import load_keyring
from tests.conftest import KEYS, ServerProcess, run_cli
from tests.device_cli import device_cli, device_json
from tests.media_support import CONTENT, packaged_media

SYSTEMS = ["widevine", "fairplay", "playready"]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return packaged_media(tmp_path_factory)


@pytest.fixture(scope="module")
def server(tmp_path_factory, media):
    process = ServerProcess(tmp_path_factory.mktemp("playback") / "data", "--test-clock", "--media-dir", str(media))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def wrong_key_server(tmp_path_factory, media):
    """A server whose catalog disagrees with the packager on the SD key: its licenses verify, the key is wrong."""
    keys = tmp_path_factory.mktemp("wrong-keys") / "keys"
    shutil.copytree(KEYS, keys)
    catalog = json.loads((keys / "catalog.json").read_text())
    catalog["contents"][CONTENT]["tracks"]["SD"]["key"] = "00112233445566778899aabbccddeeff"
    (keys / "catalog.json").write_text(json.dumps(catalog))
    process = ServerProcess(keys.parent / "data", "--keys", str(keys), "--media-dir", str(media))
    yield process
    process.stop()


@pytest.fixture
def make_device(tmp_path):
    def make(name: str = "phone") -> Path:
        path = tmp_path / name
        device_json("create", str(path), "--keys", str(KEYS), "--json")
        return path

    return make


@pytest.fixture
def no_decryption(monkeypatch) -> list:
    """Fail the test if anything is decrypted (in-process commands only)."""
    calls: list = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("decryption must not happen here")

    monkeypatch.setattr(playback, "decrypt_rendition", refuse)
    return calls


def download(device: Path, server, system: str, scheme: str = "cenc", *extra: str) -> dict:
    return device_json("download", str(device), "--server", server.url, "--content", CONTENT, "--system", system,
                       "--scheme", scheme, "--json", *extra)


def play(device: Path, expect: int = 0) -> dict:
    return device_json("play", str(device), "--content", CONTENT, "--offline", "--json", expect=expect)


def advance(device: Path, seconds: int) -> None:
    dev = Device.load(device)
    dev.record.clock_offset += seconds
    dev.save()


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
@pytest.mark.parametrize("system", SYSTEMS)
def test_play_offline_decrypts_in_the_tee_and_every_sample_decodes(make_device, server, system, scheme):
    device = make_device()
    downloaded = download(device, server, system, scheme)
    assert downloaded["status"] == "complete" and downloaded["system"] == system
    started = play(device)
    media = started["media"]
    assert started["decision"] == "play" and started["reason"] is None
    assert (media["system"], media["scheme"], media["decrypted_in"]) == (system, scheme, "tee")
    kids = {t.kid.hex(): t for t in _tracks()}
    by_track = {r["track"]: r for r in media["renditions"]}
    assert set(by_track) == {"AUDIO", "SD"}  # the standard rung
    assert by_track["AUDIO"]["frames"].get("audio", 0) > 0 and by_track["SD"]["frames"].get("video", 0) > 0
    for rendition in media["renditions"]:
        assert kids[rendition["kid"]].track.value == rendition["track"]
        assert rendition["samples_decrypted"] == sum(rendition["frames"].values())  # every sample became a frame
        assert 0 < rendition["bytes_decrypted"] <= rendition["file_bytes"]
    assert media["frames_decoded"] == media["samples_decrypted"]
    again = device_cli("play", str(device), "--content", CONTENT, "--offline")
    assert again.returncode == 0 and f"decoded {media['frames_decoded']} frames ({scheme})" in again.stdout


@pytest.mark.parametrize("system", ["widevine", "fairplay"])
def test_a_wrong_key_is_a_clear_failure_not_garbage(make_device, wrong_key_server, system):
    device = make_device()
    download(device, wrong_key_server, system)
    refused = play(device, 3)
    sd_kid = next(t.kid.hex() for t in _tracks() if t.track.value == "SD")
    assert refused["decision"] == "refused" and refused["reason"] == "WRONG_KEY"
    assert "SD track does not decrypt" in refused["message"] and refused["media"] is None
    assert refused["key_statuses"][sd_kid] == "internal-error"
    text = device_cli("play", str(device), "--content", CONTENT, "--offline")
    assert text.returncode == 3 and "WRONG_KEY" in text.stdout


def test_another_devices_license_never_reaches_decryption(make_device, server, no_decryption):
    owner, thief = make_device("owner"), make_device("thief")
    download(owner, server, "playready")
    shutil.copy(owner / "licenses.db", thief / "licenses.db")
    shutil.copytree(owner / "media", thief / "media")
    refused = play(thief, 3)
    assert refused["reason"] == "LICENSE_NOT_BOUND" and refused["media"] is None and no_decryption == []


@pytest.mark.parametrize("system", SYSTEMS)
def test_expired_or_removed_downloads_are_not_decrypted(make_device, server, system, monkeypatch):
    expiring, removed = make_device("expiring"), make_device("removed")
    for device in (expiring, removed):
        download(device, server, system)
        assert play(device)["media"]["frames_decoded"] > 0  # decrypts while the license is good
    calls: list = []
    monkeypatch.setattr(playback, "decrypt_rendition", lambda *a, **k: calls.append(a))
    advance(expiring, 48 * 3600)
    expired = play(expiring, 3)
    assert expired["reason"] == "PLAYBACK_WINDOW_EXPIRED" and expired["media"] is None
    device_json("remove", str(removed), "--content", CONTENT, "--offline", "--json")
    gone = play(removed, 3)
    assert gone["reason"] == "LICENSE_RELEASED" and gone["media"] is None
    assert calls == []


def test_an_incomplete_download_is_refused_without_starting_the_playback_clock(make_device, server):
    device = make_device()
    interrupted = run_cli("download", str(device), "--server", server.url, "--content", CONTENT,
                          "--system", "fairplay", "--interrupt-after", "150000", "--json")
    assert interrupted.returncode == 1
    refused = play(device, 3)
    assert refused["reason"] == "DOWNLOAD_INCOMPLETE" and refused["first_played_at"] is None
    assert device_json("status", str(device), "--json")[0]["first_played_at"] is None
    resumed = download(device, server, "fairplay")
    assert resumed["license_reused"]  # the stored FairPlay offline key of the first attempt
    assert play(device)["media"]["frames_decoded"] > 0


def _tracks():
    title = load_keyring(KEYS).catalog.title(CONTENT)
    assert title is not None
    return title.tracks


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
def test_an_l3_phone_decrypts_in_software_when_the_policy_lets_it_persist(tmp_path, server, scheme):
    """L3 (software keystore): a cfg= policy allows it a persistent license; it gets AUDIO and SD only,
    and plays them with the keys decrypted in software."""
    device = tmp_path / "l3-phone"
    device_json("create", str(device), "--keys", str(KEYS), "--level", "L3", "--json")
    downloaded = download(device, server, "widevine", scheme,
                          "--license-url", "/widevine/license?cfg=(persist:true,persistlevel:L3)")
    assert downloaded["status"] == "complete"
    media = play(device)["media"]
    assert media["decrypted_in"] == "software" and media["frames_decoded"] == media["samples_decrypted"] > 0
    assert {r["track"] for r in media["renditions"]} == {"AUDIO", "SD"}
