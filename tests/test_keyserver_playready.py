"""PlayReady AcquirePackagingData: the answer's anatomy, refusals, and real Shaka Packager 3.4.2
packaging through it, then a PlayReady-style license decrypting the result on an emulated device."""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from defusedxml import ElementTree as SafeET

from device_emulator import media
from device_emulator.acquire_playready import post_soap
from device_emulator.cdm.playready import PlayReadyCdm
from device_emulator.device import Device, DeviceFlags
from license_server import derived_keys, packaging
from license_server.core.model import Hdcp, LicenseKind, SecurityLevel
from license_server.errors import ERROR_CODE_HEADER
from license_server.keyring import load_keyring
from license_server.protocols.playready import wrmheader
from tests.conftest import KEYS, ServerProcess
from tests.keyserver_support import cenc_request, decode_response, signed_body
from tests.media_support import require_media_tools

SEED = derived_keys.default_seed()
PLAYREADY = bytes.fromhex("9a04f07998404286ab92e65be0885f95")
URL = "/playready/packaging"


def challenge(program: str | None = "pr-title", system: str = "9A04F079-9840-4286-AB92-E65BE0885F95") -> bytes:
    stream = f"<ProgramIdentifier>{program}</ProgramIdentifier>" if program is not None else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        '<soap:Body><AcquirePackagingData xmlns="http://schemas.microsoft.com/DRM/2007/03/protocols">'
        '<challenge xmlns="http://schemas.microsoft.com/DRM/2007/03/protocols/AcquirePackagingData/v1.0">'
        f"<ProtectionSystems><ProtectionSystemId>{system}</ProtectionSystemId></ProtectionSystems>"
        f"<StreamProtectionRequests><StreamInformation>{stream}<OffsetFromProgramStart>P0S</OffsetFromProgramStart>"
        "</StreamInformation></StreamProtectionRequests></challenge></AcquirePackagingData></soap:Body></soap:Envelope>"
    ).encode()


def first(xml: str, tag: str) -> str:
    """What Shaka Packager reads: the text of the first unprefixed <tag>."""
    match = re.search(f"<{tag}>(.*?)</{tag}>", xml)
    assert match, tag
    return match.group(1)


async def test_packaging_data_carries_the_derived_key_and_its_playready_object(client):
    response = await client.post(URL, data=challenge(), headers={"Content-Type": "text/xml"})
    assert response.status == 200 and response.content_type == "text/xml"
    xml = await response.text()
    SafeET.fromstring(xml)  # well-formed
    expected = derived_keys.derive(SEED, "pr-title", "SD")
    assert uuid.UUID(first(xml, "KeyId")).bytes == expected.kid
    assert base64.b64decode(first(xml, "KeyData")) == expected.key
    header = wrmheader.parse_wrmheader(wrmheader.parse_pro(base64.b64decode(first(xml, "Data"))))
    (key,) = header.keys
    assert key.kid == expected.kid and wrmheader.checksum_matches(key, expected.key)
    answer = decode_response(await (await client.post(
        "/widevine/cenc/getcontentkey/widevine_test", data=signed_body(cenc_request(b"pr-title", ["SD"])))).read())
    assert base64.b64decode(answer["tracks"][0]["key"]) == expected.key  # one content id, one key per track type


BAD = [
    ("not xml", b"<soap:Envelope", 400, "KEYSERVER_MALFORMED_REQUEST"),
    ("empty", b"", 400, "KEYSERVER_MALFORMED_REQUEST"),
    ("entity", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', 400, "KEYSERVER_MALFORMED_REQUEST"),
    ("other operation", b"<Envelope><Body><AcquireLicense/></Body></Envelope>", 400, "KEYSERVER_MALFORMED_REQUEST"),
    ("no program", challenge(None), 400, "KEYSERVER_CONTENT_ID_MISSING"),
    ("other system", challenge(system="EDEF8BA9-79D6-4ACE-A3C8-27DCD51D21ED"), 400, "KEYSERVER_MALFORMED_REQUEST"),
    ("catalog title", challenge("demo-movie"), 409, "KEYSERVER_CONTENT_RESERVED"),
]


@pytest.mark.parametrize("body,status,code", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_refusals_are_soap_faults_with_a_stable_code(client, body, status, code):
    response = await client.post(URL, data=body, headers={"Content-Type": "text/xml"})
    assert response.status == status and response.headers[ERROR_CODE_HEADER] == code
    fault = SafeET.fromstring(await response.read())
    assert fault.find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault") is not None
    assert fault.find(".//ErrorCode").text == code


# --------------------------------------------------------------- real packager

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("pr-ks") / "data")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def packaged(server, tmp_path_factory) -> Path:
    require_media_tools()
    base = tmp_path_factory.mktemp("pr-out")
    sample = packaging.make_sample(base / "sample.mp4", seconds=4)
    out = base / "out"
    out.mkdir()
    streams = [f"in={sample},stream={kind},init_segment={kind}/init.mp4,segment_template={kind}/seg_$Number$.m4s"
               for kind in ("audio", "video")]
    result = subprocess.run(
        [packaging.find_packager(), *streams, "--enable_playready_encryption",
         "--playready_server_url", f"{server.url}/playready/packaging", "--program_identifier", "pr-movie",
         "--clear_lead", "0", "--mpd_output", "manifest.mpd"],
        cwd=out, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def test_shaka_packager_packages_through_it_and_a_playready_license_decrypts(packaged, server, tmp_path):
    from tests.test_keyserver_packaging import decrypt_and_decode, pssh_boxes

    init = (packaged / "video" / "init.mp4").read_bytes()
    (pro,) = [data for system, _, data in pssh_boxes(init) if system == PLAYREADY]
    header = wrmheader.parse_wrmheader(wrmheader.parse_pro(pro))
    assert header.kids == (derived_keys.derive(SEED, "pr-movie", "SD").kid,)
    keyring = load_keyring(KEYS)
    device = Device.create(tmp_path / "tv", keyring, model=keyring.default_model(SecurityLevel.L1),
                           flags=DeviceFlags(), max_hdcp=Hdcp.V2_2)
    cdm = PlayReadyCdm(device)
    pending = cdm.build_challenge("pr-movie", LicenseKind.TEMPORARY, pro=pro)
    reply = post_soap(server.url + "/playready/rightsmanager.asmx", "AcquireLicense", pending.body)
    loaded = cdm.process_license(pending, reply.body)
    frames = decrypt_and_decode(packaged, media.tee_decryptor(cdm.identity.holder, loaded.handle), tmp_path)
    assert frames["video"] == 100 and frames["audio"] > 0


async def test_a_keys_directory_without_a_seed_turns_the_key_service_off(aiohttp_client, settings, store, keyring,
                                                                         clock, tmp_path):
    import dataclasses
    import shutil

    from license_server.app import create_app

    keys = tmp_path / "keys"
    shutil.copytree(KEYS, keys, ignore=shutil.ignore_patterns("keyserver"))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings, store=store, keyring=dataclasses.replace(keyring, directory=keys), clock=clock)
    client = await aiohttp_client(app)
    response = await client.post(URL, data=challenge(), headers={"Content-Type": "text/xml"})
    assert response.status == 404 and response.headers[ERROR_CODE_HEADER] == "KEYSERVER_NOT_CONFIGURED"
    response = await client.get("/cpix/pr-title")
    assert response.status == 404 and response.headers[ERROR_CODE_HEADER] == "KEYSERVER_NOT_CONFIGURED"
