"""The real PlayReady challenge: LA versions, EncryptedData to the server key, SignedInfo signature,
RevocationLists and CustomData (codec level and over real HTTP)."""

from __future__ import annotations

import base64
import re

from device_emulator.cdm.playready import PlayReadyCdm
from license_server import crypto
from license_server.core.model import LicenseKind
from license_server.crypto import ecc
from license_server.protocols.playready import challenge, soap, wrmheader

TEMPORARY = LicenseKind.TEMPORARY


def _challenge(cdm, keyring, *, server_public_key=None, version="4.3.0.0", **extra) -> bytes:
    identity = cdm.identity
    header_xml = wrmheader.parse_pro(cdm.content_header("demo-movie", version=version))
    return challenge.build_challenge(
        header_xml=header_xml, header_version=version, license_nonce=crypto.random_bytes(16),
        client_time=cdm.device.now(), chain=identity.chain, extra_xml="",
        server_public_key=server_public_key or keyring.playready.server_public_key, sign=identity.holder.sign,
        signing_public_key=identity.holder.public_key, **extra)


def _resign(body: bytes, sign) -> bytes:
    """Recompute the LA digest and the SignedInfo signature, as the device itself would."""
    la = re.search(rb"<LA .*</LA>", body).group(0)
    old_digest = re.search(rb"<DigestValue>([^<]+)</DigestValue>", body).group(1)
    body = body.replace(old_digest, base64.b64encode(crypto.sha256(la)))
    signed_info = re.search(rb"<SignedInfo .*</SignedInfo>", body).group(0)
    old_signature = re.search(rb"<SignatureValue>([^<]+)</SignatureValue>", body).group(1)
    return body.replace(old_signature, base64.b64encode(sign(signed_info)))


def test_la_version_follows_the_header_version():
    assert [challenge.la_version(v) for v in ("4.0.0.0", "4.1.0.0", "4.2.0.0", "4.3.0.0")] == ["1", "1", "4", "5"]


def test_revocation_lists_and_custom_data_are_parsed(make_device, keyring):
    cdm = PlayReadyCdm(make_device("L3"), keyring)
    list_id = bytes(range(16))
    body = _challenge(cdm, keyring, revocation_lists=((list_id, 7),), custom_data="token=a&b;x")
    parsed = challenge.parse_license_challenge(soap.parse_operation(body), body,
                                               server_key_pem=keyring.playready.server_key_pem)
    assert parsed.revocation_lists == ((list_id, 7),)
    assert parsed.custom_data == parsed.challenge.custom_data == "token=a&b;x"
    assert parsed.challenge.device.evidence is None  # a stock client: served UNVERIFIED (serves_unattested)
    assert b"CertificateChain" not in body  # the chain is inside EncryptedData


async def test_only_la_versions_1_4_and_5_are_accepted(playready, make_device, keyring):
    device = make_device("L1")
    cdm = playready.cdm(device)
    for version in ("4.0.0.0", "4.2.0.0", "4.3.0.0"):
        reply = await playready.post(_challenge(cdm, keyring, version=version))
        assert reply.status == 200, (version, reply.code)
    body = _challenge(cdm, keyring).replace(b"<Version>5</Version>", b"<Version>2</Version>")
    reply = await playready.post(_resign(body, cdm.identity.holder.sign))
    assert reply.code == "MALFORMED_CHALLENGE" and b"LA Version" in reply.body


async def test_client_data_for_another_server_key_is_refused(playready, make_device, keyring, store):
    cdm = playready.cdm(make_device("L1"))
    other = ecc.ec_public_point(ecc.generate_ec_private_key())
    reply = await playready.post(_challenge(cdm, keyring, server_public_key=other))
    assert reply.status == 500 and reply.code == "MALFORMED_CHALLENGE"
    assert reply.fault.status_code == 0x8004C601 and b"EncryptedData" in reply.body
    assert store.licenses(system="playready") == []


async def test_the_signature_must_be_by_the_certificate_signing_key(playready, make_device, keyring):
    device = make_device("L1")
    cdm = playready.cdm(device)
    stranger = ecc.generate_ec_private_key()
    body = _resign(_challenge(cdm, keyring), lambda data: ecc.ecdsa_sign(stranger, data))
    reply = await playready.post(body)
    assert reply.code == "SIGNATURE_INVALID" and reply.fault.status_code == 0x80040E8A


async def test_a_stock_client_without_evidence_gets_software_keys_only(playready, make_device, keyring, store):
    from device_emulator.cdm.playready import PendingLicense

    cdm = playready.cdm(make_device("L1"))  # an SL3000 certificate, but nothing vouches for a TEE
    body = _challenge(cdm, keyring)
    nonce = base64.b64decode(re.search(rb"<LicenseNonce>([^<]+)</LicenseNonce>", body).group(1))
    reply = await playready.post(body)
    assert reply.status == 200, reply.code
    loaded = cdm.process_license(PendingLicense(body, nonce, TEMPORARY, "demo-movie", ()), reply.body)
    assert {k.track for k in loaded.keys} == {"AUDIO", "SD"}
    assert loaded.platform_verification == "UNVERIFIED"
    assert store.device(cdm.device.device_id)["verification"] == "UNVERIFIED"
