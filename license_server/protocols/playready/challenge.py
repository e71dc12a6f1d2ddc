"""The real PlayReady license challenge: ``AcquireLicense/challenge/Challenge``.

``Challenge`` holds ``LA`` (``Id="SignedData"``) and an XML-DSig ``Signature``:

* ``LA``: ``Version`` (1, 4 or 5: 5 for WRMHEADER 4.3, 4 for 4.2, 1 otherwise),
  ``ContentHeader/WRMHEADER``, ``CLIENTINFO/CLIENTVERSION``, optional
  ``RevocationLists/RevListInfo`` (ListID, Version), optional ``CustomData``,
  ``LicenseNonce`` (16 bytes), ``ClientTime`` and ``EncryptedData`` (XML-Enc):
  ``KeyInfo/EncryptedKey/CipherData/CipherValue`` is a random P-256 point
  ElGamal-encrypted to the license server key (``KeyName`` WMRMServer); that
  point's x gives the AES-128 IV (first 16 bytes) and key (last 16 bytes);
  ``EncryptedData/CipherData/CipherValue`` is ``IV | AES-CBC(client data)``.
* client data: ``<Data><CertificateChains><CertificateChain>`` base64 BCert
  chain, ``Features``, and — our attestation evidence and the device's HDCP
  capability — in an ``EmulatorClientData`` element of our own namespace,
  which real servers skip.
* ``Signature/SignedInfo/Reference/DigestValue`` is SHA-256 of the ``LA``
  element as transmitted; ``SignatureValue`` is ECDSA-SHA256 (raw r|s) by the
  device certificate's signing key over ``SignedInfo`` as transmitted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from license_server import crypto
from license_server.core.model import (
    DeviceClaims,
    Hdcp,
    LicenseChallenge,
    LicenseKind,
    RequestKind,
)
from license_server.crypto import ecc, elgamal
from license_server.errors import malformed
from license_server.protocols.playready import (
    MESSAGES_NS,
    PROTOCOLS_NS,
    SYSTEM,
    soap,
    wrmheader,
    xmlsafe,
)
from license_server.protocols.playready.xmlsafe import Element

LA_VERSIONS = ("1", "4", "5")
CLIENT_VERSION = "10.0.16384.10011"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
XMLENC_NS = "http://www.w3.org/2001/04/xmlenc#"
EMULATOR_NS = "urn:drm-license-emulator:playready:client-data"
PERSISTENT_HINT = soap.PERSISTENT_HINT


def la_version(header_version: str) -> str:
    return {"4.3.0.0": "5", "4.2.0.0": "4"}.get(header_version, "1")


@dataclass(frozen=True)
class ParsedChallenge:
    challenge: LicenseChallenge
    header: wrmheader.WrmHeader
    license_nonce: bytes
    client_version: str
    custom_data: str | None
    la_version: str
    revocation_lists: tuple[tuple[bytes, int], ...]


# ------------------------------------------------------------------ build

def client_data(chain: bytes, extra_xml: str = "") -> str:
    return (f"<Data><CertificateChains><CertificateChain> {xmlsafe.b64encode(chain)} </CertificateChain>"
            '</CertificateChains><Features><Feature Name="AESCBC"></Feature></Features>'
            f"{extra_xml}</Data>")


def emulator_data(evidence_xml: str, max_hdcp: Hdcp) -> str:
    return (f'<EmulatorClientData xmlns="{EMULATOR_NS}"><MaxHDCP>{max_hdcp.name}</MaxHDCP>{evidence_xml}'
            "</EmulatorClientData>")


def build_challenge(*, header_xml: str, header_version: str, license_nonce: bytes, client_time: int, chain: bytes,
                    extra_xml: str, server_public_key: bytes, sign: Callable[[bytes], bytes],
                    signing_public_key: bytes, custom_data: str | None = None,
                    revocation_lists: tuple[tuple[bytes, int], ...] = ()) -> bytes:
    """A complete AcquireLicense SOAP request, as a real client writes it."""
    point = elgamal.random_point()
    iv, key = point[:16], point[16:32]
    encrypted_key = elgamal.encrypt(server_public_key[-64:], point)
    cipher = iv + crypto.aes_cbc_encrypt(key, iv, client_data(chain, extra_xml).encode("utf-8"))
    lists = "".join(f"<RevListInfo><ListID>{xmlsafe.b64encode(list_id)}</ListID><Version>{version}</Version>"
                    "</RevListInfo>" for list_id, version in revocation_lists)
    la = (
        f'<LA xmlns="{PROTOCOLS_NS}" Id="SignedData" xml:space="preserve">'
        f"<Version>{la_version(header_version)}</Version><ContentHeader>{header_xml}</ContentHeader>"
        f"<CLIENTINFO><CLIENTVERSION>{CLIENT_VERSION}</CLIENTVERSION></CLIENTINFO>"
        + (f"<RevocationLists>{lists}</RevocationLists>" if revocation_lists else "")
        + (f"<CustomData>{xmlsafe.escape(custom_data)}</CustomData>" if custom_data else "")
        + f"<LicenseNonce>{xmlsafe.b64encode(license_nonce)}</LicenseNonce><ClientTime>{client_time}</ClientTime>"
        f'<EncryptedData xmlns="{XMLENC_NS}" Type="{XMLENC_NS}Element">'
        f'<EncryptionMethod Algorithm="{XMLENC_NS}aes128-cbc"></EncryptionMethod>'
        f'<KeyInfo xmlns="{DSIG_NS}"><EncryptedKey xmlns="{XMLENC_NS}">'
        f'<EncryptionMethod Algorithm="{PROTOCOLS_NS}#ecc256"></EncryptionMethod>'
        f'<KeyInfo xmlns="{DSIG_NS}"><KeyName>WMRMServer</KeyName></KeyInfo>'
        f"<CipherData><CipherValue>{xmlsafe.b64encode(encrypted_key)}</CipherValue></CipherData></EncryptedKey>"
        f"</KeyInfo><CipherData><CipherValue>{xmlsafe.b64encode(cipher)}</CipherValue></CipherData>"
        "</EncryptedData></LA>"
    )
    signed_info = (
        f'<SignedInfo xmlns="{DSIG_NS}"><CanonicalizationMethod '
        'Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"></CanonicalizationMethod>'
        f'<SignatureMethod Algorithm="{PROTOCOLS_NS}#ecdsa-sha256"></SignatureMethod>'
        f'<Reference URI="#SignedData"><DigestMethod Algorithm="{PROTOCOLS_NS}#sha256"></DigestMethod>'
        f"<DigestValue>{xmlsafe.b64encode(crypto.sha256(la.encode('utf-8')))}</DigestValue></Reference></SignedInfo>"
    )
    signature = xmlsafe.b64encode(sign(signed_info.encode("utf-8")))
    return soap.envelope(
        f'<AcquireLicense xmlns="{PROTOCOLS_NS}"><challenge><Challenge xmlns="{MESSAGES_NS}">{la}'
        f'<Signature xmlns="{DSIG_NS}">{signed_info}<SignatureValue>{signature}</SignatureValue>'
        f'<KeyInfo xmlns="{DSIG_NS}"><KeyValue><ECCKeyValue><PublicKey>'
        f"{xmlsafe.b64encode(signing_public_key[-64:])}</PublicKey></ECCKeyValue></KeyValue></KeyInfo>"
        "</Signature></Challenge></challenge></AcquireLicense>"
    )


# ------------------------------------------------------------------ parse

def _decrypt_client_data(la: Element, server_key_pem: bytes) -> Element:
    encrypted = xmlsafe.require(la, "EncryptedData")
    key_info = xmlsafe.path(encrypted, "KeyInfo", "EncryptedKey", "CipherData")
    wrapped = xmlsafe.b64decode(xmlsafe.text(key_info, "CipherValue"), "EncryptedKey CipherValue",
                                size=elgamal.CIPHERTEXT_BYTES)
    cipher = xmlsafe.b64decode(xmlsafe.text(xmlsafe.require(encrypted, "CipherData"), "CipherValue"),
                               "EncryptedData CipherValue")
    if not server_key_pem:
        raise malformed("this server has no PlayReady license server key (run `keys init`)")
    try:
        point = elgamal.decrypt(ecc.private_scalar(server_key_pem), wrapped)
        plain = crypto.aes_cbc_decrypt(point[16:32], cipher[:16], cipher[16:]) if len(cipher) > 16 else b""
    except crypto.CryptoError as exc:
        raise malformed("EncryptedData is not encrypted to this license server's key") from exc
    return xmlsafe.parse(plain, what="challenge client data", limit=32 * 1024)


def _revocation_lists(la: Element) -> tuple[tuple[bytes, int], ...]:
    lists = xmlsafe.child(la, "RevocationLists")
    if lists is None:
        return ()
    return tuple((xmlsafe.b64decode(xmlsafe.text(item, "ListID"), "RevListInfo ListID", size=16),
                  xmlsafe.integer(xmlsafe.text(item, "Version"), "RevListInfo Version"))
                 for item in xmlsafe.children(lists, "RevListInfo"))


def parse_license_challenge(operation: Element, body: bytes, *, server_key_pem: bytes) -> ParsedChallenge:
    """``AcquireLicense/challenge/Challenge/LA`` into neutral form (the one challenge entry point)."""
    if xmlsafe.local(operation.tag) != "AcquireLicense":
        raise malformed("expected an AcquireLicense operation")
    challenge_element = xmlsafe.path(operation, "challenge", "Challenge")
    la = xmlsafe.require(challenge_element, "LA")
    signature_element = xmlsafe.require(challenge_element, "Signature")
    raw_la = xmlsafe.raw_element(body, "LA")
    digest = xmlsafe.b64decode(xmlsafe.text(xmlsafe.path(signature_element, "SignedInfo", "Reference"),
                                            "DigestValue"), "DigestValue", size=32)
    if not crypto.constant_time_equal(digest, crypto.sha256(raw_la)):
        raise malformed("the DigestValue does not match the signed <LA> element")
    signature = xmlsafe.b64decode(xmlsafe.text(signature_element, "SignatureValue"), "SignatureValue", size=64)
    version = xmlsafe.text(la, "Version")
    if version not in LA_VERSIONS:
        raise malformed(f"LA Version {version!r} is not supported (1, 4 or 5)")
    headers = list(xmlsafe.require(la, "ContentHeader"))
    if len(headers) != 1:
        raise malformed("ContentHeader must hold one WRMHEADER")
    header = wrmheader.parse_wrmheader_element(headers[0])
    nonce = xmlsafe.b64decode(xmlsafe.text(la, "LicenseNonce"), "LicenseNonce", size=16)
    client_time = xmlsafe.integer(xmlsafe.text(la, "ClientTime"), "ClientTime")
    info = xmlsafe.child(la, "CLIENTINFO")
    client_version = (xmlsafe.optional_text(info, "CLIENTVERSION") if info is not None else None) or ""
    custom_data = xmlsafe.optional_text(la, "CustomData")
    lists = _revocation_lists(la)
    data = _decrypt_client_data(la, server_key_pem)
    chains = xmlsafe.children(xmlsafe.require(data, "CertificateChains"), "CertificateChain")
    if len(chains) != 1:
        raise malformed("the client data must hold one CertificateChain")
    chain = xmlsafe.b64decode("".join((chains[0].text or "").split()), "CertificateChain")
    extra = xmlsafe.child(data, "EmulatorClientData")
    hdcp_name = xmlsafe.optional_text(extra, "MaxHDCP") if extra is not None else None
    attestation = xmlsafe.child(extra, "DeviceAttestation") if extra is not None else None
    persistent = custom_data is not None and PERSISTENT_HINT in custom_data.split(";")
    claims = DeviceClaims(
        certificate_chain=chain, signed_payload=xmlsafe.raw_element(body, "SignedInfo"), signature=signature,
        evidence=soap.parse_evidence(attestation) if attestation is not None else None,
        max_hdcp=Hdcp.__members__.get(hdcp_name or "NONE", Hdcp.NONE),
        client_info=(("client_version", client_version), ("header_version", header.version),
                     ("la_version", version)),
    )
    neutral = LicenseChallenge(
        system=SYSTEM, kind=RequestKind.NEW,
        license_kind=LicenseKind.PERSISTENT if persistent else LicenseKind.TEMPORARY,
        content_id=None, key_ids=header.kids, request_id=nonce, request_time=client_time, device=claims,
        custom_data=custom_data, playback_id="",  # a stream's heartbeat is a license re-acquired by device and title
    )
    return ParsedChallenge(neutral, header, nonce, client_version, custom_data, version, lists)
