"""The inspector on the real PlayReady formats: the challenge (decrypted with the license server key, or
said to be encrypted to it), XMR objects by their real names, BCert chains, SOAP faults with DRM_E names."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys

import pytest

from license_server.errors import DrmError, ErrorCode
from license_server.inspect import Context, inspect
from license_server.protocols.playready import faults, soap
from tests.conftest import START
from tests.inspect_support import challenges, first_kid

SOAP_HEADERS = {"Content-Type": "text/xml",
                "SOAPAction": '"http://schemas.microsoft.com/DRM/2007/03/protocols/AcquireLicense"'}


@pytest.fixture
def context(keyring) -> Context:
    return Context.from_keyring(keyring, now=START)


@pytest.fixture
def body(make_device, keyring) -> bytes:
    return challenges(make_device("L1"), keyring)["playready"]


def look(data: bytes, context: Context) -> dict:
    document = inspect(data, context, now=START)
    json.dumps(document)
    return document


def test_challenge_with_the_server_key_shows_the_decrypted_chain_and_a_verifying_signature(body, keyring, context):
    document = look(body, context)
    fields = document["fields"]
    assert document["format"] == "playready.challenge" and fields["la_version"] in ("1", "4", "5")
    assert first_kid(keyring).hex() in [k["kid"] for k in fields["wrmheader"]["keys"]]
    assert len(bytes.fromhex(fields["license_nonce"])) == 16 and fields["client_time"] > 0
    assert fields["signed_info"]["reference_uri"] == "#SignedData" and fields["signed_info"]["digest_matches_la"]
    assert fields["encrypted_data"]["key_name"] == "WMRMServer" and fields["encrypted_data"]["decrypted"] is True
    assert "not shown" in fields["encrypted_data"]["cipher_value"]
    chain = fields["device_certificate_chain"]
    assert chain["verified"] is True
    device, issuer = chain["certificates"]
    assert device["certificate_type"] == "DEVICE (2)" and issuer["certificate_type"] == "ISSUER (4)"
    usages = [u for key in device["keys"] for u in key["usages"]]
    assert "SIGN (1)" in usages and "ENCRYPT_KEY (2)" in usages
    assert device["security_level"] == 3000 and device["manufacturer"] and issuer["model_name"] == chain["model"]
    assert fields["signature_verifies"] is True


def test_a_tampered_signature_is_shown_not_to_verify(body, context):
    tampered = re.sub(rb"<SignatureValue>[^<]+</SignatureValue>",
                      b"<SignatureValue>" + base64.b64encode(bytes(64)) + b"</SignatureValue>", body)
    assert look(tampered, context)["fields"]["signature_verifies"] is False


def test_challenge_without_the_server_key_says_it_is_encrypted_to_it(body):
    document = look(body, Context())
    fields = document["fields"]
    assert document["format"] == "playready.challenge" and fields["wrmheader"]["keys"]
    assert fields["encrypted_data"]["decrypted"] is False and "device_certificate_chain" not in fields
    assert any("encrypted to the license server key" in note for note in document["notes"])


def test_the_cli_without_keys_says_the_challenge_is_encrypted(tmp_path, body):
    path = tmp_path / "challenge.xml"
    path.write_bytes(body)
    result = subprocess.run([sys.executable, "-m", "license_server.cli", "inspect", str(path), "--json", "--no-keys"],
                            capture_output=True, timeout=60, check=False)
    document = json.loads(result.stdout)
    assert document["format"] == "playready.challenge"
    assert any("encrypted to the license server key" in note for note in document["notes"])


def content_key_texts(keyring) -> list[str]:
    return [track.key.hex() for title in keyring.catalog.titles.values() for track in title.tracks]


async def test_license_response_lists_every_xmr_object_by_name_and_hides_keys(client, body, keyring, context):
    response = await client.post("/playready/rightsmanager.asmx", data=body, headers=SOAP_HEADERS)
    answer = await response.read()
    assert response.status == 200, answer
    document = look(answer, context)
    lic = document["fields"]["licenses"][0]
    assert len(bytes.fromhex(lic["rights_id"])) == 16
    outer = lic["objects"][0]
    assert (outer["type"], outer["name"]) == ("0x0001", "OUTER_CONTAINER")
    names = {o["name"]: o for o in outer["objects"]}
    assert {"GLOBAL_POLICY_CONTAINER", "KEY_MATERIAL_CONTAINER", "SIGNATURE"} <= set(names)
    material = {o["name"]: o for o in names["KEY_MATERIAL_CONTAINER"]["objects"]}
    key = material["CONTENT_KEY"]
    assert key["type"] == "0x000A" and "ECC-256" in key["value"]["cipher_type"]
    assert key["value"]["key_id"] in [k.hex() for k in soap_kids(keyring)]
    assert "not shown" in key["value"]["encrypted_key"]
    text = json.dumps(document)
    assert not any(secret in text for secret in content_key_texts(keyring))
    raw = soap.parse_license_response(answer).licenses[0]
    assert look(raw, context)["fields"]["objects"] == lic["objects"]


def soap_kids(keyring) -> list[bytes]:
    return [track.kid for title in keyring.catalog.titles.values() for track in title.tracks]


def test_a_bcert_chain_and_a_certificate_on_their_own(body, context):
    from license_server.inspect import decode
    from license_server.protocols.playready import certificates

    _, found = decode(body, context, now=START)
    assert found is not None and found.challenge is not None and found.challenge.device is not None
    chain = found.challenge.device.certificate_chain
    document = look(chain, context)
    assert document["format"] == "playready.bcert_chain" and document["fields"]["verified"] is True
    assert look(base64.b64encode(chain), context)["format"] == "playready.bcert_chain"
    unverified = look(chain, Context())
    assert unverified["fields"]["verified"] is None and unverified["fields"]["certificates"]
    leaf = certificates.decode_chain(chain)[0].encode()
    single = look(leaf, context)
    assert single["format"] == "playready.bcert" and single["fields"]["certificate_type"] == "DEVICE (2)"
    assert look(chain[:-10], context)["recognised"] is False


def test_fault_shows_the_drm_e_status_name(context):
    document = look(faults.build_fault(DrmError(ErrorCode.DEVICE_REVOKED, "revoked")), context)
    assert document["format"] == "playready.fault"
    assert document["fields"]["status_name"] == "DRM_E_DEVCERT_REVOKED"
    assert document["fields"]["status_code"] == "0x8004C065" and "DRM_E_DEVCERT_REVOKED" in document["summary"]
