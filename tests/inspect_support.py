"""Messages of every dialect, made by the device emulator's CDMs and the codecs, for the inspector tests."""

from __future__ import annotations

from device_emulator.cdm.fairplay import FairPlayCdm
from device_emulator.cdm.playready import PlayReadyCdm
from device_emulator.cdm.widevine import WidevineCdm
from license_server.core.model import LicenseKind
from license_server.protocols import clearkey
from license_server.protocols.playready import wrmheader

CONTENT = "demo-movie"


def first_kid(keyring) -> bytes:
    title = keyring.catalog.title(CONTENT)
    return title.tracks[0].kid


def challenges(device, keyring) -> dict[str, bytes]:
    """One NEW license challenge per dialect from ``device`` (Clear Key has no device: its codec's request)."""
    fairplay = FairPlayCdm(device)
    fairplay.accept_certificate(keyring.fairplay_certificate)
    return {
        "widevine": WidevineCdm(device).build_challenge(CONTENT, LicenseKind.PERSISTENT).body,
        "fairplay": fairplay.build_spc(CONTENT, LicenseKind.PERSISTENT).body,
        "playready": PlayReadyCdm(device, keyring).build_challenge(CONTENT, LicenseKind.TEMPORARY).body,
        "clearkey": clearkey.build_license_request([first_kid(keyring)]),
    }


def pssh_boxes(device, keyring) -> dict[str, bytes]:
    """A PSSH box of each system."""
    from license_server.protocols.widevine import codec

    kid = first_kid(keyring)

    def box(system_id: bytes, data: bytes, kids: tuple[bytes, ...] = ()) -> bytes:
        version = 1 if kids else 0
        body = bytes([version, 0, 0, 0]) + system_id
        if kids:
            body += len(kids).to_bytes(4, "big") + b"".join(kids)
        body += len(data).to_bytes(4, "big") + data
        return (8 + len(body)).to_bytes(4, "big") + b"pssh" + body

    pro = PlayReadyCdm(device, keyring).content_header(CONTENT)
    return {
        "widevine": box(codec.SYSTEM_ID, codec.pssh_data(CONTENT, (kid,))),
        "playready": wrmheader.pssh_box(pro),
        "clearkey": box(bytes.fromhex("1077efecc0b24d02ace33c1e52e2fb4b"), b"", (kid,)),
        "fairplay": box(bytes.fromhex("94ce86fb07ff4f43adb893d2fa968ca2"), b"", (kid,)),
    }
