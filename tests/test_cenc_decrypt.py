"""Common Encryption: sample crypto rules, and real packages decrypted and decoded."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from device_emulator.media import (
    MediaError,
    WrongKeyError,
    check_nal_structure,
    decrypt_rendition,
    tee_decryptor,
    verify_decodes,
)
from device_emulator.tee import EmulatedTee, TeeError
from license_server.core.model import LicenseKind
from license_server.crypto import cenc
from license_server.crypto.cenc import CencError, ProtectedSample
from tests.media_support import CONTENT, catalog_keys, packaged_media

KEY = bytes(range(16))
IV8 = bytes.fromhex("0102030405060708")


# ------------------------------------------------------------ sample rules

def test_ctr_whole_sample_is_plain_ctr_from_padded_iv() -> None:
    data = bytes(range(200)) * 2
    sample = ProtectedSample("cenc", IV8, data)
    encrypted = cenc.encrypt_sample(KEY, sample)
    assert encrypted != data
    assert encrypted == cenc.aes_ctr_crypt(KEY, IV8 + bytes(8), data)  # 8-byte IV = counter high half
    assert cenc.decrypt_sample(KEY, ProtectedSample("cenc", IV8, encrypted)) == data


def test_ctr_clear_bytes_do_not_advance_the_counter() -> None:
    data = bytes(range(256)) + bytes(range(100))
    subsamples = ((5, 21), (40, 30), (10, 250))  # protected parts not block aligned on purpose
    encrypted = cenc.encrypt_sample(KEY, ProtectedSample("cenc", IV8, data, subsamples))
    # clear ranges untouched
    assert encrypted[:5] == data[:5] and encrypted[26:66] == data[26:66] and encrypted[96:106] == data[96:106]
    # protected ranges form one continuous keystream
    protected = data[5:26] + data[66:96] + data[106:]
    stream = cenc.aes_ctr_crypt(KEY, IV8, protected)
    assert encrypted[5:26] + encrypted[66:96] + encrypted[106:] == stream
    assert cenc.decrypt_sample(KEY, ProtectedSample("cenc", IV8, encrypted, subsamples)) == data


def test_ctr_16_byte_iv() -> None:
    iv = bytes(range(16, 32))
    data = b"x" * 40
    assert cenc.encrypt_sample(KEY, ProtectedSample("cenc", iv, data)) == cenc.aes_ctr_crypt(KEY, iv, data)


def test_cbcs_pattern_one_in_ten_blocks_and_clear_tail() -> None:
    iv = bytes(16)
    data = bytes(i % 256 for i in range(16 * 25 + 7))  # 25 full blocks + a 7-byte tail
    sample = ProtectedSample("cbcs", iv, data, ((0, len(data)),), crypt_byte_block=1, skip_byte_block=9)
    encrypted = cenc.encrypt_sample(KEY, sample)
    changed = [b for b in range(26) if encrypted[b * 16:(b + 1) * 16] != data[b * 16:(b + 1) * 16]]
    assert changed == [0, 10, 20]  # crypt 1, skip 9; the partial block (25) stays clear
    # the encrypted blocks are one CBC chain
    chain = cenc.aes_cbc_encrypt_blocks(KEY, iv, data[0:16] + data[160:176] + data[320:336])
    assert encrypted[0:16] + encrypted[160:176] + encrypted[320:336] == chain
    assert cenc.decrypt_sample(KEY, ProtectedSample("cbcs", iv, encrypted, sample.subsamples, 1, 9)) == data


def test_cbcs_iv_resets_per_subsample() -> None:
    iv = bytes(range(16))
    part = bytes(range(64))
    data = b"HDR" + part + b"HDR" + part
    subs = ((3, 64), (3, 64))
    encrypted = cenc.encrypt_sample(KEY, ProtectedSample("cbcs", iv, data, subs, 1, 9))
    assert encrypted[3:67] == encrypted[70:134]  # same plaintext, same IV: same ciphertext
    assert encrypted[:3] == b"HDR"


def test_cbcs_zero_pattern_encrypts_every_full_block() -> None:
    iv = bytes(16)
    data = bytes(range(16 * 4 + 9))
    encrypted = cenc.encrypt_sample(KEY, ProtectedSample("cbcs", iv, data))  # audio: 0:0, no subsamples
    assert encrypted[:64] == cenc.aes_cbc_encrypt_blocks(KEY, iv, data[:64])
    assert encrypted[64:] == data[64:]


def test_inconsistent_samples_are_refused() -> None:
    with pytest.raises(CencError):
        cenc.decrypt_sample(KEY, ProtectedSample("cenc", IV8, b"x" * 10, ((2, 3),)))
    with pytest.raises(CencError):
        cenc.decrypt_sample(KEY, ProtectedSample("cenc", b"123", b"x" * 10))
    with pytest.raises(CencError):
        cenc.decrypt_sample(KEY, ProtectedSample("cens", IV8, b"x" * 10))


def test_nal_structure_check() -> None:
    idr = (5).to_bytes(4, "big") + bytes([0x65, 1, 2, 3, 4])
    sps = (3).to_bytes(4, "big") + bytes([0x67, 9, 9])
    check_nal_structure(sps + idr, 4)
    for bad in (idr[:-1], idr + b"\x00", (5).to_bytes(4, "big") + bytes([0xE5, 1, 2, 3, 4]),
                (5).to_bytes(4, "big") + bytes([0x1F, 1, 2, 3, 4]), (0).to_bytes(4, "big")):
        with pytest.raises(WrongKeyError):
            check_nal_structure(bad, 4)


def test_emulated_tee_exposes_no_key_export() -> None:
    assert not hasattr(EmulatedTee, "export_content_keys")


# ----------------------------------------------------------- real packages

@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return packaged_media(tmp_path_factory)


def rendition(media: Path, scheme: str, track: str) -> tuple[Path, list[Path]]:
    base = media / CONTENT / scheme / track
    return base / "init.mp4", sorted(base.glob("seg_*.m4s"), key=lambda p: int(p.stem.split("_")[1]))


def framemd5(path: Path, *extra: str) -> list[str]:
    out = subprocess.run([shutil.which("ffmpeg"), "-nostdin", "-v", "error", *extra, "-i", str(path), "-map", "0",
                          "-f", "framemd5", "-"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if not line.startswith("#")]


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
@pytest.mark.parametrize("track", ["audio", "sd", "hd"])
def test_catalog_keys_decrypt_and_decode(media: Path, tmp_path: Path, scheme: str, track: str) -> None:
    keys = catalog_keys()
    init, segments = rendition(media, scheme, track)
    clear = decrypt_rendition(init, segments, keys.__getitem__)
    out = tmp_path / f"{scheme}-{track}.mp4"
    out.write_bytes(clear)
    verify_decodes(out)  # ffmpeg decodes every frame with no error
    assert b"encv" not in clear[:4096] and b"enca" not in clear[:4096]
    # ffmpeg's own CENC decryption of the encrypted file yields the very same frames
    encrypted = tmp_path / "encrypted.mp4"
    encrypted.write_bytes(init.read_bytes() + b"".join(s.read_bytes() for s in segments))
    kid_key = next(key for kid, key in keys.items() if _track_of(media, scheme, kid) == track.upper())
    assert framemd5(out) == framemd5(encrypted, "-decryption_key", kid_key.hex())
    assert len(framemd5(out)) > 10


def _track_of(media: Path, scheme: str, kid: bytes) -> str:
    doc = json.loads((media / CONTENT / scheme / "package.json").read_text())
    return next((r["track"] for r in doc["renditions"] if r["kid"] == kid.hex()), "")


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
@pytest.mark.parametrize("track", ["audio", "sd"])
def test_wrong_key_is_detected(media: Path, tmp_path: Path, scheme: str, track: str) -> None:
    init, segments = rendition(media, scheme, track)
    wrong = decrypt_rendition(init, segments, lambda kid: bytes.fromhex("00112233445566778899aabbccddeeff"))
    out = tmp_path / "wrong.mp4"
    out.write_bytes(wrong)
    with pytest.raises(WrongKeyError, match="does not decode"):
        verify_decodes(out)


def test_key_of_another_track_is_detected(media: Path, tmp_path: Path) -> None:
    keys = catalog_keys()
    hd_key = next(v for k, v in keys.items() if _track_of(media, "cenc", k) == "HD")
    init, segments = rendition(media, "cenc", "sd")
    out = tmp_path / "mixed.mp4"
    out.write_bytes(decrypt_rendition(init, segments, lambda kid: hd_key))
    with pytest.raises(WrongKeyError):
        verify_decodes(out)


def test_truncated_segment_is_a_media_error(media: Path, tmp_path: Path) -> None:
    init, segments = rendition(media, "cenc", "sd")
    cut = tmp_path / "cut.m4s"
    cut.write_bytes(segments[0].read_bytes()[:5000])
    with pytest.raises(MediaError):
        decrypt_rendition(init, [cut], catalog_keys().__getitem__)


def test_clear_output_is_not_the_encrypted_input(media: Path) -> None:
    init, segments = rendition(media, "cbcs", "sd")
    clear = decrypt_rendition(init, segments, catalog_keys().__getitem__)
    encrypted = init.read_bytes() + b"".join(s.read_bytes() for s in segments)
    assert len(clear) == len(encrypted) and clear != encrypted


async def test_l1_tee_decrypts_without_exporting_keys(media: Path, tmp_path: Path, make_device, widevine) -> None:
    device = make_device("L1")
    status, _, loaded, _ = await widevine.acquire(device, CONTENT, LicenseKind.PERSISTENT)
    assert status == 200
    for scheme in ("cenc", "cbcs"):
        init, segments = rendition(media, scheme, "hd")
        out = tmp_path / f"tee-{scheme}.mp4"
        out.write_bytes(decrypt_rendition(init, segments, decryptor=tee_decryptor(device.tee, loaded.handle)))
        verify_decodes(out)
    device.tee.close(loaded.handle)
    with pytest.raises(TeeError) as info:
        decrypt_rendition(init, segments, decryptor=tee_decryptor(device.tee, loaded.handle))
    assert info.value.code == "SESSION_CLOSED"


async def test_tee_refuses_a_kid_it_does_not_hold(media: Path, make_device, widevine) -> None:
    device = make_device("L3")  # L3 gets AUDIO and SD keys only
    status, _, loaded, _ = await widevine.acquire(device, CONTENT, LicenseKind.TEMPORARY)
    assert status == 200
    init, segments = rendition(media, "cenc", "hd")
    with pytest.raises(TeeError) as info:
        decrypt_rendition(init, segments, decryptor=tee_decryptor(device.tee, loaded.handle))
    assert info.value.code == "KEY_NOT_LOADED"
