"""SOAP 1.1 envelopes, license responses and the signed report messages.

The license challenge itself is :mod:`.challenge`. Every report request is
``Envelope/Body/<Action>/challenge/Challenge`` holding one signed element
(``LA`` for AcquireLicense) and an XML-DSig-shaped ``Signature``:
``SignedInfo/Reference/DigestValue`` is SHA-256 of the signed element and
``SignatureValue`` is ECDSA-SHA256 (raw r||s, base64) by the
device key over the signed element's exact bytes as transmitted (UTF-8, no
canonicalization). Everything a server must trust — the WRMHEADER, the nonce,
the time, the certificate chain and the attestation evidence — sits inside
the signed element.
"""

from __future__ import annotations

from dataclasses import dataclass

from license_server import crypto
from license_server.core.model import Evidence
from license_server.errors import malformed
from license_server.protocols.playready import (
    MAX_BODY_BYTES,
    MESSAGES_NS,
    PROTOCOLS_NS,
    SOAP_ENV_NS,
    xmlsafe,
)
from license_server.protocols.playready.xmlsafe import Element

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
SIG_ALGORITHM = PROTOCOLS_NS + "#ecdsa-sha256"
DIGEST_ALGORITHM = PROTOCOLS_NS + "#sha256"
PERSISTENT_HINT = "license-type=persistent"


# --------------------------------------------------------------- envelopes

def envelope(body_xml: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>'
            f'<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soap="{SOAP_ENV_NS}">'
            f"<soap:Body>{body_xml}</soap:Body></soap:Envelope>").encode()


def signed_request(action: str, signed_xml: str, signature: bytes) -> bytes:
    """Wrap a signed element (already serialized) and its device signature."""
    digest = xmlsafe.b64encode(crypto.sha256(signed_xml.encode("utf-8")))
    return envelope(
        f'<{action} xmlns="{PROTOCOLS_NS}"><challenge><Challenge xmlns="{MESSAGES_NS}">{signed_xml}'
        f'<Signature xmlns="{DSIG_NS}"><SignedInfo><SignatureMethod Algorithm="{SIG_ALGORITHM}"/>'
        f'<Reference URI="#SignedData"><DigestMethod Algorithm="{DIGEST_ALGORITHM}"/>'
        f"<DigestValue>{digest}</DigestValue></Reference></SignedInfo>"
        f"<SignatureValue>{xmlsafe.b64encode(signature)}</SignatureValue></Signature>"
        f"</Challenge></challenge></{action}>"
    )


def parse_operation(body: bytes) -> Element:
    """The one element inside ``soap:Body`` (its local name is the operation)."""
    root = xmlsafe.parse(body, what="SOAP request", limit=MAX_BODY_BYTES)
    if xmlsafe.local(root.tag) != "Envelope" or xmlsafe.namespace(root.tag) != SOAP_ENV_NS:
        raise malformed("the request is not a SOAP 1.1 envelope")
    operations = list(xmlsafe.require(root, "Body"))
    if len(operations) != 1:
        raise malformed("soap:Body must hold exactly one operation")
    return operations[0]


@dataclass(frozen=True)
class SignedPart:
    element: Element
    raw: bytes  # the exact bytes the signature covers
    signature: bytes


def signed_part(operation: Element, body: bytes, name: str) -> SignedPart:
    """Find ``challenge/Challenge/<name>`` and its signature; check the digest."""
    challenge = xmlsafe.path(operation, "challenge", "Challenge")
    element = xmlsafe.require(challenge, name)
    signature_element = xmlsafe.require(challenge, "Signature")
    signature = xmlsafe.b64decode(xmlsafe.text(signature_element, "SignatureValue"), "SignatureValue", size=64)
    raw = xmlsafe.raw_element(body, name)
    reference = xmlsafe.path(signature_element, "SignedInfo", "Reference")
    digest = xmlsafe.b64decode(xmlsafe.text(reference, "DigestValue"), "DigestValue", size=32)
    if not crypto.constant_time_equal(digest, crypto.sha256(raw)):
        raise malformed(f"the DigestValue does not match the signed <{name}> element")
    return SignedPart(element, raw, signature)


# ------------------------------------------------------------ evidence XML

def evidence_xml(evidence: Evidence) -> str:
    e = xmlsafe.escape
    indicators = "".join(f"<Indicator>{e(i)}</Indicator>" for i in evidence.root_indicators)
    return (
        f"<DeviceAttestation><Source>{'TEE' if evidence.from_tee else 'SOFTWARE'}</Source>"
        f"<VerifiedBoot>{e(evidence.verified_boot)}</VerifiedBoot>"
        f"<BootloaderLocked>{str(evidence.bootloader_locked).lower()}</BootloaderLocked>"
        f"<RootIndicators>{indicators}</RootIndicators>"
        f"<AppPackage>{e(evidence.app_package)}</AppPackage>"
        f"<AppSigningDigest>{evidence.app_signing_digest.hex()}</AppSigningDigest>"
        f"<AppRecognized>{str(evidence.app_recognized).lower()}</AppRecognized>"
        f"<Nonce>{xmlsafe.b64encode(evidence.nonce)}</Nonce><Timestamp>{evidence.timestamp}</Timestamp>"
        f"<OsPatchLevel>{evidence.os_patch_level}</OsPatchLevel></DeviceAttestation>"
    )


def _bool(value: str, what: str) -> bool:
    if value not in ("true", "false"):
        raise malformed(f"{what} must be true or false")
    return value == "true"


def parse_evidence(element: Element) -> Evidence:
    root = xmlsafe.require(element, "RootIndicators")
    source = xmlsafe.text(element, "Source")
    if source not in ("TEE", "SOFTWARE"):
        raise malformed("DeviceAttestation/Source must be TEE or SOFTWARE")
    try:
        digest = bytes.fromhex(xmlsafe.optional_text(element, "AppSigningDigest") or "")
    except ValueError as exc:
        raise malformed("AppSigningDigest is not hex") from exc
    return Evidence(
        verified_boot=xmlsafe.text(element, "VerifiedBoot"),
        bootloader_locked=_bool(xmlsafe.text(element, "BootloaderLocked"), "BootloaderLocked"),
        root_indicators=tuple((i.text or "").strip() for i in xmlsafe.children(root, "Indicator")),
        app_package=xmlsafe.optional_text(element, "AppPackage") or "",
        app_signing_digest=digest,
        app_recognized=_bool(xmlsafe.text(element, "AppRecognized"), "AppRecognized"),
        nonce=xmlsafe.b64decode(xmlsafe.text(element, "Nonce"), "attestation Nonce"),
        timestamp=xmlsafe.integer(xmlsafe.text(element, "Timestamp"), "attestation Timestamp"),
        os_patch_level=xmlsafe.integer(xmlsafe.optional_text(element, "OsPatchLevel") or "0", "OsPatchLevel"),
        from_tee=source == "TEE",
    )


# ---------------------------------------------------------------- response

def nonce_binding(integrity_key: bytes, license_nonce: bytes, license_bytes: bytes) -> bytes:
    """AES-CMAC tying a persistent license's response to the request's LicenseNonce."""
    return crypto.aes_cmac(integrity_key, license_nonce + crypto.sha256(license_bytes))


def build_license_response(licenses: list[bytes], *, response_id: bytes, license_nonce: bytes | None = None,
                           binding: bytes | None = None, transaction_id: bytes | None = None) -> bytes:
    items = "".join(f"<License>{xmlsafe.b64encode(lic)}</License>" for lic in licenses)
    extra = ""
    if license_nonce is not None:
        extra += f"<LicenseNonce>{xmlsafe.b64encode(license_nonce)}</LicenseNonce>"
    if binding is not None:
        extra += f"<NonceBinding>{xmlsafe.b64encode(binding)}</NonceBinding>"
    extra += f"<ResponseID>{xmlsafe.b64encode(response_id)}</ResponseID>"
    if transaction_id is not None:
        extra += (f"<Acknowledgement><TransactionID>{xmlsafe.b64encode(transaction_id)}</TransactionID>"
                  "</Acknowledgement>")
    return _license_response_envelope(f"<Licenses>{items}</Licenses>{extra}")


def build_client_info_response(info: dict[str, str]) -> bytes:
    """``msg:clientinfo``: the verified client certificate information instead of a license."""
    e = xmlsafe.escape
    fields = "".join(f"<{name}>{e(value)}</{name}>" for name, value in info.items())
    return _license_response_envelope(f"<Licenses/><ClientInfo>{fields}</ClientInfo>")


def _license_response_envelope(inner: str) -> bytes:
    return envelope(
        f'<AcquireLicenseResponse xmlns="{PROTOCOLS_NS}"><AcquireLicenseResult><Response>'
        f'<LicenseResponse xmlns="{MESSAGES_NS}"><Version>1</Version>{inner}</LicenseResponse>'
        "</Response></AcquireLicenseResult></AcquireLicenseResponse>"
    )


@dataclass(frozen=True)
class LicenseResponse:
    licenses: tuple[bytes, ...]
    license_nonce: bytes | None
    binding: bytes | None
    response_id: bytes | None
    transaction_id: bytes | None
    client_info: dict[str, str] | None


def parse_license_response(body: bytes) -> LicenseResponse:
    root = xmlsafe.parse(body, what="license response", limit=1024 * 1024)
    response = xmlsafe.path(root, "Body", "AcquireLicenseResponse", "AcquireLicenseResult", "Response",
                            "LicenseResponse")
    licenses = tuple(xmlsafe.b64decode((e.text or "").strip(), "License")
                     for e in xmlsafe.children(xmlsafe.require(response, "Licenses"), "License"))

    def optional(name: str) -> bytes | None:
        value = xmlsafe.optional_text(response, name)
        return xmlsafe.b64decode(value, name) if value else None

    ack = xmlsafe.child(response, "Acknowledgement")
    transaction = xmlsafe.optional_text(ack, "TransactionID") if ack is not None else None
    info = xmlsafe.child(response, "ClientInfo")
    return LicenseResponse(
        licenses=licenses, license_nonce=optional("LicenseNonce"), binding=optional("NonceBinding"),
        response_id=optional("ResponseID"),
        transaction_id=xmlsafe.b64decode(transaction, "TransactionID") if transaction else None,
        client_info={xmlsafe.local(c.tag): (c.text or "") for c in info} if info is not None else None,
    )
