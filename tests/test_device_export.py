"""``device-emulator export --format wvd``: the file layout, the L1 warning, refusals (no pywidevine needed)."""

from __future__ import annotations

import struct

from device_emulator.export import FORMATS, ExportError, export_device
from license_server import crypto
from license_server.protocols.widevine import license_protocol_pb2 as pb
from license_server.protocols.widevine.certificates import CertType, issue_certificate
from tests.conftest import cli_json, run_cli


def parse_wvd(data: bytes) -> dict:
    assert data[:3] == b"WVD"
    version, device_type, level, flags = struct.unpack_from(">BBBB", data, 3)
    (key_len,) = struct.unpack_from(">H", data, 7)
    key = data[9:9 + key_len]
    (client_len,) = struct.unpack_from(">H", data, 9 + key_len)
    client = data[11 + key_len:11 + key_len + client_len]
    assert len(data) == 11 + key_len + client_len
    return {"version": version, "type": device_type, "level": level, "flags": flags, "key": key,
            "client": pb.ClientIdentification.FromString(client), "client_bytes": client}


def test_wvd_layout_of_an_l3_device(make_device):
    device = make_device("L3", model="emulated-laptop-l3")
    exported = export_device(device, "wvd")
    wvd = parse_wvd(exported.data)
    assert (wvd["version"], wvd["type"], wvd["level"], wvd["flags"]) == (2, 1, 3, 0)  # CHROME, L3
    assert exported.warnings == ()
    client = wvd["client"]
    assert client.type == pb.ClientIdentification.DRM_DEVICE_CERTIFICATE and not client.HasField("attestation")
    assert client.token == device.certificate_chain
    assert client.SerializeToString() == wvd["client_bytes"]  # canonical: pywidevine re-serializes and compares
    # the key is the device's: its public half is the certificate's
    leaf = pb.DrmCertificate.FromString(pb.SignedDrmCertificate.FromString(client.token).drm_certificate)
    signature = crypto.rsa_pss_sign(crypto_pem(wvd["key"]), b"payload")
    crypto.rsa_pss_verify(leaf.public_key, b"payload", signature)
    assert exported.summary["system_id"] == leaf.system_id == 7102


def crypto_pem(der: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_der_private_key(der, password=None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_l1_export_warns_that_the_key_leaves_the_tee(make_device):
    exported = export_device(make_device("L1", rooted=True), "wvd")
    wvd = parse_wvd(exported.data)
    assert (wvd["type"], wvd["level"]) == (2, 1)  # ANDROID, L1
    assert any("out of the emulated TEE" in w for w in exported.warnings)
    assert any("rooted" in w and "not carried" in w for w in exported.warnings)


def test_a_device_made_before_leaf_system_ids_is_told_to_re_create(make_device, keyring):
    device = make_device("L1")
    model = keyring.models[device.record.model]
    old_leaf = issue_certificate(cert_type=CertType.DEVICE, public_key=device.tee.public_key,
                                 serial_number=bytes.fromhex(device.device_id), issuer_key_pem=model.key_pem,
                                 issuer=pb.SignedDrmCertificate.FromString(model.certificate))
    (device.directory / "certificate.bin").write_bytes(old_leaf.SerializeToString())
    try:
        export_device(device, "wvd")
    except ExportError as exc:
        assert "re-create it with `device-emulator create`" in str(exc)
    else:
        raise AssertionError("an old device was exported without a system id")
    result = run_cli("export", str(device.directory), "--format", "wvd", "--out", str(device.directory / "x.wvd"))
    assert result.returncode == 2 and "re-create" in result.stderr and "Traceback" not in result.stderr


def test_export_cli_refuses_to_overwrite_and_unknown_formats(tmp_path):
    device = tmp_path / "phone"
    cli_json("create", str(device), "--json")
    out = tmp_path / "phone.wvd"
    first = run_cli("export", str(device), "--format", "wvd", "--out", str(out))
    assert first.returncode == 0 and "warning" in first.stderr and "out of the emulated TEE" in first.stderr
    assert out.stat().st_mode & 0o077 == 0  # the file holds a private key
    again = run_cli("export", str(device), "--format", "wvd", "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    forced = cli_json("export", str(device), "--format", "wvd", "--out", str(out), "--force", "--json")
    assert forced["format"] == "wvd" and forced["security_level"] == 1 and forced["bytes"] == out.stat().st_size
    unknown = run_cli("export", str(device), "--format", "nope", "--out", str(tmp_path / "y"))
    assert unknown.returncode == 2
    assert "wvd" in FORMATS and run_cli("export", "--help").stdout.count("wvd") >= 1


def test_keys_init_and_create_agree_on_system_ids(tmp_path, clock):
    """Freshly generated keys: every model certificate carries its models.json system id, and so does the
    leaf of a device provisioned from it."""
    from device_emulator.device import Device, DeviceFlags
    from license_server.core.model import Hdcp
    from license_server.keygen import MODELS, init_keys
    from license_server.keyring import load_keyring

    init_keys(tmp_path / "keys", force=False, now=clock.now())
    ring = load_keyring(tmp_path / "keys")
    for spec in MODELS:
        model = ring.models[spec["name"]]
        cert = pb.DrmCertificate.FromString(pb.SignedDrmCertificate.FromString(model.certificate).drm_certificate)
        assert cert.system_id == model.system_id == spec["system_id"]
        device = Device.create(tmp_path / spec["name"], ring, model=model, flags=DeviceFlags(), max_hdcp=Hdcp.V1,
                               clock=clock)
        leaf = pb.DrmCertificate.FromString(pb.SignedDrmCertificate.FromString(device.certificate_chain)
                                            .drm_certificate)
        assert leaf.system_id == spec["system_id"]
        assert export_device(device, "wvd").summary["system_id"] == spec["system_id"]
