"""Widevine-style challenges without attestation evidence: served as unverified, software-only platforms.

A stock CDM cannot add our evidence field; neither can a rooted device that chooses to omit it.
Both get what a software device may have (AUDIO, SD), never a persistent license, and the license
says PLATFORM_UNVERIFIED. The server flag, a cfg= key and a token claim refuse them instead.
"""

from __future__ import annotations

import pytest

from device_emulator.cdm.widevine import PendingRequest, WidevineCdm
from device_emulator.device import Device
from license_server.app import create_app
from license_server.core.model import LicenseKind
from license_server.errors import ERROR_CODE_HEADER
from license_server.protocols.widevine import license_protocol_pb2 as pb
from license_server.protocols.widevine.certificates import CertType, issue_certificate, verify_chain
from license_server.revocations import RevocationList
from tests.tokens_support import token

TEMPORARY, PERSISTENT = LicenseKind.TEMPORARY, LicenseKind.PERSISTENT


def unattested(device: Device, kind: LicenseKind = TEMPORARY, content_id: str = "demo-movie") -> PendingRequest:
    """Our device's challenge with the evidence removed and the request signed again: a stock CDM's shape."""
    pending = WidevineCdm(device).build_challenge(content_id, kind, privacy=False)
    request = pb.LicenseRequest.FromString(pb.SignedMessage.FromString(pending.body).msg)
    request.client_id.ClearField("attestation")
    msg = request.SerializeToString()
    body = pb.SignedMessage(type=pb.SignedMessage.LICENSE_REQUEST, msg=msg, signature=device.tee.sign(msg))
    return PendingRequest(body.SerializeToString(), msg, pending.request_id, kind, content_id)


async def post(client, pending: PendingRequest, query: str = "", headers: dict | None = None):
    response = await client.post("/widevine/license" + query, data=pending.body, headers=headers or {})
    return response.status, response.headers, await response.read()


@pytest.mark.parametrize("level", ["L1", "L3"])
async def test_unattested_device_gets_software_keys_and_platform_unverified(client, make_device, store, level):
    device = make_device(level)
    pending = unattested(device)
    status, headers, body = await post(client, pending)
    assert status == 200, headers.get(ERROR_CODE_HEADER)
    loaded = WidevineCdm(device).process_license(pending, body)
    lic = loaded.license
    assert [k.track_label for k in lic.key] == ["AUDIO", "SD"]
    assert all(k.level == pb.License.KeyContainer.SW_SECURE_CRYPTO for k in lic.key)
    assert lic.platform_verification_status == pb.PLATFORM_UNVERIFIED
    assert not lic.remote_attestation_verified and not lic.policy.can_persist
    assert loaded.platform_verification == "UNVERIFIED"
    assert store.license(loaded.license_id).tracks == ["AUDIO", "SD"]


async def test_attested_l1_device_still_gets_every_track(widevine, make_device):
    device = make_device("L1")
    status, _, loaded, _ = await widevine.acquire(device)
    assert status == 200
    assert [k.track_label for k in loaded.license.key] == ["AUDIO", "SD", "HD", "UHD1"]
    assert loaded.license.platform_verification_status == pb.PLATFORM_HARDWARE_VERIFIED


@pytest.mark.parametrize("query", ["", "?cfg=(persistlevel:L3)", "?cfg=(persist:true,persistlevel:L3)"])
async def test_unattested_device_never_gets_a_persistent_license(client, make_device, store, query):
    kind = TEMPORARY if "persist:true" in query else PERSISTENT
    status, headers, _ = await post(client, unattested(make_device("L1"), kind), query)
    assert status == 403 and headers[ERROR_CODE_HEADER] == "ATTESTATION_REQUIRED"
    assert store.licenses() == []


async def test_cfg_attestation_required_refuses_unattested_devices(client, make_device):
    status, headers, _ = await post(client, unattested(make_device("L1")), "?cfg=(attestation:required)")
    assert status == 403 and headers[ERROR_CODE_HEADER] == "ATTESTATION_REQUIRED"
    status, headers, _ = await post(client, unattested(make_device("L1")), "?cfg=(attestation:optional)")
    assert status == 400 and headers[ERROR_CODE_HEADER] == "INVALID_POLICY_OVERRIDE"


async def test_cfg_attestation_required_does_not_affect_attested_devices(widevine, make_device):
    status, _, loaded, _ = await widevine.acquire(make_device("L1"), query="?cfg=(attestation:required)")
    assert status == 200 and len(loaded.license.key) == 4


async def test_token_claim_refuses_unattested_devices(client, make_device):
    strict = token(policy={"persistent": True, "require_attestation": True})
    status, headers, _ = await post(client, unattested(make_device("L1")), headers={"X-DRM-Token": strict})
    assert status == 403 and headers[ERROR_CODE_HEADER] == "ATTESTATION_REQUIRED"
    relaxed = token(policy={"persistent": True, "require_attestation": False})
    status, _, _ = await post(client, unattested(make_device("L1")), headers={"X-DRM-Token": relaxed})
    assert status == 200


async def test_server_flag_refuses_unattested_devices(aiohttp_client, settings, store, keyring, clock, make_device):
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.require_attestation = True
    client = await aiohttp_client(create_app(settings, store=store, keyring=keyring, clock=clock))
    status, headers, body = await post(client, unattested(make_device("L3")))
    assert status == 403 and headers[ERROR_CODE_HEADER] == "ATTESTATION_REQUIRED"
    assert pb.SignedMessage.FromString(body).type == pb.SignedMessage.ERROR_RESPONSE
    good = WidevineCdm(make_device("L1")).build_challenge("demo-movie", TEMPORARY, privacy=False)
    response = await client.post("/widevine/license", data=good.body)
    assert response.status == 200


async def test_bad_evidence_is_still_refused(client, make_device):
    device = make_device("L1", rooted=True)
    pending = WidevineCdm(device).build_challenge("demo-movie", TEMPORARY, privacy=False)
    status, headers, _ = await post(client, pending)
    assert status == 403 and headers[ERROR_CODE_HEADER] == "DEVICE_ROOTED"


async def test_revoked_unattested_device_is_refused(client, make_device, store):
    device = make_device("L1")
    RevocationList(store).replace({"devices": [device.device_id]})
    status, headers, _ = await post(client, unattested(device))
    assert status == 403 and headers[ERROR_CODE_HEADER] == "DEVICE_REVOKED"


def test_leaf_certificate_carries_the_model_system_id(make_device, keyring):
    device = make_device("L1")
    leaf = pb.DrmCertificate.FromString(pb.SignedDrmCertificate.FromString(device.certificate_chain).drm_certificate)
    assert leaf.type == CertType.DEVICE and leaf.system_id == device.record.system_id == 7001
    root = pb.DrmCertificate.FromString(pb.SignedDrmCertificate.FromString(keyring.root_certificate).drm_certificate)
    assert verify_chain(device.certificate_chain, root.public_key, now=0).system_id == 7001


def test_leaf_with_another_system_id_than_its_model_is_refused(keyring):
    from license_server import crypto
    from license_server.protocols.widevine.certificates import CertificateError

    model = keyring.models["emulated-phone-l1"]
    key = crypto.generate_rsa_private_key()
    forged = issue_certificate(cert_type=CertType.DEVICE, public_key=crypto.public_key_der(key),
                               serial_number=b"\x01" * 16, issuer_key_pem=model.key_pem, system_id=7101,
                               issuer=pb.SignedDrmCertificate.FromString(model.certificate))
    root = pb.DrmCertificate.FromString(pb.SignedDrmCertificate.FromString(keyring.root_certificate).drm_certificate)
    with pytest.raises(CertificateError, match="differs"):
        verify_chain(forged.SerializeToString(), root.public_key, now=0)


def test_leaf_without_system_id_still_verifies(keyring):
    """Devices provisioned before the leaf carried the system id keep working with the server."""
    from license_server import crypto

    model = keyring.models["emulated-phone-l1"]
    key = crypto.generate_rsa_private_key()
    old = issue_certificate(cert_type=CertType.DEVICE, public_key=crypto.public_key_der(key),
                            serial_number=b"\x02" * 16, issuer_key_pem=model.key_pem,
                            issuer=pb.SignedDrmCertificate.FromString(model.certificate))
    root = pb.DrmCertificate.FromString(pb.SignedDrmCertificate.FromString(keyring.root_certificate).drm_certificate)
    assert verify_chain(old.SerializeToString(), root.public_key, now=0).system_id == 7001
