"""The PlayReady license challenge (AcquireLicense/challenge/Challenge): the LA element, its XML-DSig
signature and, when the inspector holds the license server key, the decrypted client data."""

from __future__ import annotations

from typing import Any

from license_server import crypto
from license_server.errors import malformed
from license_server.inspect import playready_bcert
from license_server.inspect.model import Decoded, secret
from license_server.inspect.values import plain
from license_server.protocols.playready import challenge, wrmheader, xmlsafe
from license_server.protocols.playready.xmlsafe import Element

ENCRYPTED_NOTE = ("EncryptedData (the device certificate chain and client data) is encrypted to the license server "
                  "key (WMRMServer); inspect with the keys directory to decrypt it")


def header_view(header: wrmheader.WrmHeader) -> dict[str, Any]:
    return {"version": header.version, "la_url": header.la_url, "lui_url": header.lui_url, "ds_id": header.ds_id,
            "keys": [{"kid": k.kid.hex(), "kid_in_header": wrmheader.kid_to_header(k.kid), "algid": k.algid,
                      "checksum": k.checksum.hex() if k.checksum else None} for k in header.keys]}


def _signed_info(signature: Element, raw_la: bytes) -> dict[str, Any]:
    info = xmlsafe.require(signature, "SignedInfo")
    reference = xmlsafe.require(info, "Reference")
    method = xmlsafe.child(info, "SignatureMethod")
    digest = xmlsafe.b64decode(xmlsafe.text(reference, "DigestValue"), "DigestValue")
    return {
        "canonicalization_method": _algorithm(xmlsafe.child(info, "CanonicalizationMethod")),
        "signature_method": _algorithm(method),
        "reference_uri": reference.get("URI"),
        "digest_method": _algorithm(xmlsafe.child(reference, "DigestMethod")),
        "digest_value": digest.hex(),
        "digest_matches_la": crypto.constant_time_equal(digest, crypto.sha256(raw_la)),
    }


def _algorithm(element: Element | None) -> str | None:
    return element.get("Algorithm") if element is not None else None


def _la_fields(la: Element, operation: Element, data: bytes) -> dict[str, Any]:
    headers = list(xmlsafe.require(la, "ContentHeader"))
    if len(headers) != 1:
        raise malformed("ContentHeader must hold one WRMHEADER")
    info = xmlsafe.child(la, "CLIENTINFO")
    encrypted = xmlsafe.require(la, "EncryptedData")
    key_name = None
    key_info = xmlsafe.child(encrypted, "KeyInfo")
    wrapped = xmlsafe.child(key_info, "EncryptedKey") if key_info is not None else None
    inner = xmlsafe.child(wrapped, "KeyInfo") if wrapped is not None else None
    if inner is not None:
        key_name = xmlsafe.optional_text(inner, "KeyName")
    cipher = xmlsafe.optional_text(xmlsafe.require(encrypted, "CipherData"), "CipherValue") or ""
    lists = challenge._revocation_lists(la)
    signature = xmlsafe.path(operation, "challenge", "Challenge", "Signature")
    return {
        "operation": "AcquireLicense",
        "la_version": xmlsafe.text(la, "Version"),
        "wrmheader": header_view(wrmheader.parse_wrmheader_element(headers[0])),
        "client_version": (xmlsafe.optional_text(info, "CLIENTVERSION") if info is not None else None),
        "revocation_lists": [{"list_id": list_id.hex(), "version": version} for list_id, version in lists],
        "custom_data": xmlsafe.optional_text(la, "CustomData"),
        "license_nonce": xmlsafe.b64decode(xmlsafe.text(la, "LicenseNonce"), "LicenseNonce").hex(),
        "client_time": xmlsafe.integer(xmlsafe.text(la, "ClientTime"), "ClientTime"),
        "encrypted_data": {"encryption_method": _algorithm(xmlsafe.child(encrypted, "EncryptionMethod")),
                           "key_name": key_name,
                           "cipher_value": secret(xmlsafe.b64decode(cipher, "CipherValue") if cipher else b"",
                                                  "IV | AES-128-CBC client data")},
        "signed_info": _signed_info(signature, xmlsafe.raw_element(data, "LA")),
        "signature_value": f"ECDSA-SHA256 (P-256), "
                           f"{len(xmlsafe.b64decode(xmlsafe.text(signature, 'SignatureValue'), 'SignatureValue'))}"
                           " bytes",
    }


def decode(operation: Element, data: bytes, server_key_pem: bytes, context: Any) -> Decoded:
    la = xmlsafe.path(operation, "challenge", "Challenge", "LA")
    fields = _la_fields(la, operation, data)
    notes: list[str] = []
    parsed = None
    if not server_key_pem:
        fields["encrypted_data"]["decrypted"] = False
        notes.append(ENCRYPTED_NOTE)
    else:
        parsed = challenge.parse_license_challenge(operation, data, server_key_pem=server_key_pem)
        claims = parsed.challenge.device
        assert claims is not None
        fields["encrypted_data"]["decrypted"] = True
        fields["license_kind"] = parsed.challenge.license_kind.value
        fields["device_certificate_chain"] = playready_bcert.chain_view(claims.certificate_chain, context)
        fields["signature_verifies"] = playready_bcert.signature_verifies(
            claims.certificate_chain, claims.signed_payload, claims.signature)
        fields["max_hdcp"] = claims.max_hdcp.name
        fields["device_attestation"] = plain(claims.evidence) if claims.evidence else None
    decoded = Decoded("playready.challenge", f"PlayReady AcquireLicense challenge (LA version {fields['la_version']})",
                      fields, dialect="playready", notes=notes)
    if parsed is not None:
        decoded.challenge, decoded.extra = parsed.challenge, parsed
    return decoded
