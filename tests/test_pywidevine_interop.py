"""Stock pywidevine 1.9.0 (an independent Widevine CDM, GPL-3.0, test-only) against our server over real HTTP.

Devices are provisioned and exported with the real CLIs (``device-emulator create`` / ``export --format
wvd``); pywidevine is used unmodified. The only setting made is the one a user makes for privacy mode:
trusting our emulated root (``Cdm.root_cert``) instead of Google's.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("pywidevine", reason="pywidevine (GPL-3.0, test-only) is not installed: pip install -e '.[test]'")

from pywidevine import license_protocol_pb2 as theirs
from pywidevine.cdm import Cdm
from pywidevine.device import Device as WvdDevice
from pywidevine.exceptions import SignatureMismatch
from pywidevine.pssh import PSSH

from license_server.protocols.widevine import license_protocol_pb2 as ours
from tests.conftest import KEYS, ServerProcess, cli_json, run_cli, write_revocations

CATALOG = json.loads((KEYS / "catalog.json").read_text())["contents"]["demo-movie"]["tracks"]
SOFTWARE_KEYS = {CATALOG[t]["kid"]: CATALOG[t]["key"] for t in ("AUDIO", "SD")}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("pywidevine") / "data")
    yield process
    process.stop()


def post(url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def export(tmp_path: Path, name: str, *create_args: str) -> tuple[Path, dict, str]:
    """``device-emulator create`` then ``export --format wvd``; returns the .wvd, the device info, stderr."""
    device_dir, wvd = tmp_path / name, tmp_path / f"{name}.wvd"
    info = cli_json("create", str(device_dir), *create_args, "--json")
    result = run_cli("export", str(device_dir), "--format", "wvd", "--out", str(wvd))
    assert result.returncode == 0, result.stderr
    return wvd, info, result.stderr


def pssh() -> PSSH:
    result = run_cli("pssh", "--content", "demo-movie")
    assert result.returncode == 0, result.stderr
    return PSSH(result.stdout.strip())


def challenge(wvd: Path, *, license_type: str = "STREAMING") -> tuple[Cdm, bytes, bytes]:
    cdm = Cdm.from_device(WvdDevice.load(wvd))
    session = cdm.open()
    return cdm, session, cdm.get_license_challenge(session, pssh(), license_type, privacy_mode=False)


def error_code(body: bytes) -> tuple[int, str]:
    """The public LicenseError.Error value and our stable code of an ERROR_RESPONSE."""
    signed = theirs.SignedMessage.FromString(body)
    assert signed.type == theirs.SignedMessage.MessageType.Value("ERROR_RESPONSE")
    err = ours.LicenseError.FromString(signed.msg)
    return err.error_code, err.emulator_error_code


def test_both_schemas_load_in_one_process():
    assert theirs.DESCRIPTOR.name == "license_protocol.proto"
    assert ours.DESCRIPTOR.name == "drm_license_emulator/widevine/license_protocol.proto"
    assert ours.License.DESCRIPTOR.full_name == "drm_license_emulator.widevine.License"
    assert ours.License.DESCRIPTOR.full_name != theirs.License.DESCRIPTOR.full_name
    msg = ours.SignedMessage(type=ours.SignedMessage.LICENSE, msg=b"x").SerializeToString()
    assert theirs.SignedMessage.FromString(msg).type == theirs.SignedMessage.MessageType.Value("LICENSE")


@pytest.mark.parametrize("level, model", [("L3", "emulated-laptop-l3"), ("L1", "emulated-phone-l1")])
def test_exported_device_gets_the_catalogs_audio_and_sd_keys(server, tmp_path, level, model):
    wvd, info, stderr = export(tmp_path, level.lower(), "--level", level, "--model", model)
    assert ("out of the emulated TEE" in stderr) is (level == "L1")
    device = WvdDevice.load(wvd)
    assert device.system_id == info["system_id"] and device.security_level == (1 if level == "L1" else 3)
    cdm, session, body = challenge(wvd)
    status, headers, reply = post(server.url + "/widevine/license", body)
    assert status == 200, headers.get("X-DRM-Error-Code")
    cdm.parse_license(session, reply)
    keys = {key.kid.hex: key.key.hex() for key in cdm.get_keys(session, "CONTENT")}
    assert keys == SOFTWARE_KEYS
    lic = theirs.License.FromString(theirs.SignedMessage.FromString(reply).msg)
    assert lic.platform_verification_status == theirs.PlatformVerificationStatus.Value("PLATFORM_UNVERIFIED")
    assert not lic.policy.can_persist and not lic.remote_attestation_verified


def test_privacy_mode_with_our_service_certificate(server, tmp_path, monkeypatch):
    wvd, _, _ = export(tmp_path, "phone", "--level", "L1")
    url = server.url + "/widevine/license"
    status, _, certificate = post(url, Cdm.service_certificate_challenge)
    assert status == 200
    cdm = Cdm.from_device(WvdDevice.load(wvd))
    session = cdm.open()
    with pytest.raises(SignatureMismatch):  # pywidevine trusts Google's root until told otherwise
        cdm.set_service_certificate(session, certificate)
    root = theirs.SignedDrmCertificate.FromString((KEYS / "widevine" / "root.cert.bin").read_bytes())
    monkeypatch.setattr(Cdm, "root_signed_cert", root)
    monkeypatch.setattr(Cdm, "root_cert", theirs.DrmCertificate.FromString(root.drm_certificate))
    assert cdm.set_service_certificate(session, certificate) == "license.emulator.test"
    body = cdm.get_license_challenge(session, pssh(), privacy_mode=True)
    request = theirs.LicenseRequest.FromString(theirs.SignedMessage.FromString(body).msg)
    assert request.HasField("encrypted_client_id") and not request.HasField("client_id")
    status, _, reply = post(url, body)
    assert status == 200
    cdm.parse_license(session, reply)
    assert {k.kid.hex: k.key.hex() for k in cdm.get_keys(session, "CONTENT")} == SOFTWARE_KEYS


def test_require_attestation_refuses_the_stock_cdm_but_not_our_devices(tmp_path):
    strict = ServerProcess(tmp_path / "strict", "--require-attestation")
    try:
        wvd, _, _ = export(tmp_path, "phone", "--level", "L1")
        _, _, body = challenge(wvd)
        status, headers, reply = post(strict.url + "/widevine/license", body)
        assert status == 403 and headers["X-DRM-Error-Code"] == "ATTESTATION_REQUIRED"
        assert error_code(reply)[1] == "ATTESTATION_REQUIRED"
        granted = cli_json("acquire", str(tmp_path / "phone"), "--server", strict.url, "--content", "demo-movie",
                           "--json")
        assert [k["track"] for k in granted["keys"]] == ["AUDIO", "SD", "HD", "UHD1"]
        assert granted["platform_verification"] == "HARDWARE_VERIFIED"
    finally:
        strict.stop()


def test_cfg_attestation_required_and_offline_requests_are_refused(server, tmp_path):
    wvd, _, _ = export(tmp_path, "laptop", "--level", "L3", "--model", "emulated-laptop-l3")
    _, _, body = challenge(wvd)
    status, headers, _ = post(server.url + "/widevine/license?cfg=(attestation:required)", body)
    assert status == 403 and headers["X-DRM-Error-Code"] == "ATTESTATION_REQUIRED"
    _, _, offline = challenge(wvd, license_type="OFFLINE")
    status, headers, _ = post(server.url + "/widevine/license", offline)
    assert status == 403 and headers["X-DRM-Error-Code"] == "ATTESTATION_REQUIRED"


def test_revoked_exported_device_is_refused(server, tmp_path):
    wvd, info, _ = export(tmp_path, "revoked", "--level", "L1")
    write_revocations(server.data_dir, {"devices": [info["device_id"]]})
    try:
        _, _, body = challenge(wvd)
        status, headers, reply = post(server.url + "/widevine/license", body)
    finally:
        write_revocations(server.data_dir, {"devices": []})
    assert status == 403 and headers["X-DRM-Error-Code"] == "DEVICE_REVOKED"
    assert error_code(reply) == (ours.LicenseError.REVOKED_DRM_DEVICE_CERTIFICATE, "DEVICE_REVOKED")


def test_tampered_request_is_refused(server, tmp_path):
    wvd, _, _ = export(tmp_path, "tamper", "--level", "L3")
    _, _, body = challenge(wvd)
    signed = theirs.SignedMessage.FromString(body)
    request = theirs.LicenseRequest.FromString(signed.msg)
    request.client_id.client_capabilities.max_hdcp_version = 5  # claim HDCP 2.3 after signing
    signed.msg = request.SerializeToString()
    status, headers, reply = post(server.url + "/widevine/license", signed.SerializeToString())
    assert status == 403 and headers["X-DRM-Error-Code"] == "SIGNATURE_INVALID"
    assert error_code(reply) == (ours.LicenseError.INVALID_DRM_DEVICE_CERTIFICATE, "SIGNATURE_INVALID")


def test_license_tampered_in_transit_is_rejected_by_pywidevine(server, tmp_path):
    wvd, _, _ = export(tmp_path, "transit", "--level", "L3")
    cdm, session, body = challenge(wvd)
    _, _, reply = post(server.url + "/widevine/license", body)
    signed = theirs.SignedMessage.FromString(reply)
    lic = theirs.License.FromString(signed.msg)
    lic.policy.license_duration_seconds = 10 * 365 * 86400
    signed.msg = lic.SerializeToString()
    with pytest.raises(SignatureMismatch):
        cdm.parse_license(session, signed.SerializeToString())


def test_our_emulated_devices_still_get_what_they_got(server, tmp_path):
    export(tmp_path, "l1", "--level", "L1")  # exporting does not change the device
    l1 = cli_json("acquire", str(tmp_path / "l1"), "--server", server.url, "--content", "demo-movie", "--json")
    assert [k["track"] for k in l1["keys"]] == ["AUDIO", "SD", "HD", "UHD1"]
    assert l1["platform_verification"] == "HARDWARE_VERIFIED"
    cli_json("create", str(tmp_path / "l3"), "--level", "L3", "--json")
    l3 = cli_json("acquire", str(tmp_path / "l3"), "--server", server.url, "--content", "demo-movie", "--json")
    assert [k["track"] for k in l3["keys"]] == ["AUDIO", "SD"]
    assert {k["kid"]: k["key"] for k in l3["keys"]} == SOFTWARE_KEYS
    assert l3["platform_verification"] == "SOFTWARE_VERIFIED"


def test_pssh_command_names_the_title_and_its_key_ids():
    box = pssh()
    assert box.system_id == PSSH.SystemId.Widevine
    assert {kid.hex for kid in box.key_ids} == {t["kid"] for t in CATALOG.values()}
    data = theirs.WidevinePsshData.FromString(base64.b64decode(run_cli("pssh", "--content", "demo-movie",
                                                                         "--no-kids").stdout)[32:])
    assert data.content_id == b"demo-movie" and not data.key_ids


def test_the_third_party_cdm_page_works_as_written(tmp_path):
    """Run docs/third-party-cdms.md: its shell blocks (on a free port) and its Python script, then compare the
    keys it printed with the ones the page shows."""
    import os
    import re
    import subprocess
    import sys

    from tests.conftest import PROJECT, free_port

    doc = (PROJECT / "docs" / "third-party-cdms.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(bash|python)\n(.*?)```", doc, re.DOTALL)
    for lang, body in blocks:
        if lang == "python":
            name = body.split("\n", 1)[0].lstrip("# ").split(":")[0]
            (tmp_path / name).write_text(body, encoding="utf-8")
    shell = "\n".join(body for lang, body in blocks if lang == "bash" and "pip install" not in body)
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + shell.replace(
        "8080", str(free_port()))
    (tmp_path / "keys").symlink_to(KEYS)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    shown = re.findall(r"^# (?:INFO:license:\[CONTENT\] )?([0-9a-f]{32}:[0-9a-f]{32})$", doc, re.MULTILINE)
    assert shown and set(shown) == {f"{kid}:{key}" for kid, key in SOFTWARE_KEYS.items()}
    for line in shown:
        assert output.count(line) >= 2, line  # once from the pywidevine CLI, once from the privacy-mode script
    assert "service certificate of license.emulator.test" in output
    assert "platform verification: PLATFORM_UNVERIFIED" in output
    assert "out of the emulated TEE" in output
