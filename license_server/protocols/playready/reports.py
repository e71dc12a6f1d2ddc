"""Device reports after acquisition: license acknowledgement, Secure Stop and
Secure Delete (sans-I/O build and parse, both sides).

Each report is a signed SOAP request like the license challenge (see
:mod:`soap`): one signed element carrying the device certificate chain, the
device time and a fresh 16-byte ``ReportNonce``, signed ECDSA-SHA256 by the
device key. The answers echo the nonce and the license id, so the device can
match them to its pending report before it purges anything.

========================  ======================  ================  ======================
SOAPAction (suffix)       operation               signed element    answer
========================  ======================  ================  ======================
AcknowledgeLicense        AcknowledgeLicense      ``Ack``           ``AcknowledgeResponse``
ProcessSecureStop         ProcessSecureStop       ``SecureStop``    ``SecureStopResponse``
ProcessSecureDelete       ProcessSecureDelete     ``SecureDelete``  ``SecureDeleteResponse``
========================  ======================  ================  ======================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from license_server.errors import malformed
from license_server.protocols.playready import MESSAGES_NS, PROTOCOLS_NS, wrmheader, xmlsafe
from license_server.protocols.playready.soap import envelope, signed_part, signed_request
from license_server.protocols.playready.xmlsafe import Element

ACK, SECURE_STOP, SECURE_DELETE = "AcknowledgeLicense", "ProcessSecureStop", "ProcessSecureDelete"
SIGNED_ELEMENT = {ACK: "Ack", SECURE_STOP: "SecureStop", SECURE_DELETE: "SecureDelete"}
RESPONSE_ELEMENT = {ACK: "AcknowledgeResponse", SECURE_STOP: "SecureStopResponse",
                    SECURE_DELETE: "SecureDeleteResponse"}


@dataclass(frozen=True)
class Report:
    operation: str  # ACK | SECURE_STOP | SECURE_DELETE
    license_id: str  # hex rights id
    kids: tuple[bytes, ...]
    client_time: int
    nonce: bytes
    certificate_chain: bytes
    transaction_id: bytes | None = None  # ACK
    result: int = 0  # ACK: the device's storage result (0 = stored)
    playback_start: int = 0  # SECURE_STOP
    playback_stop: int = 0  # SECURE_STOP
    deleted_at: int = 0  # SECURE_DELETE
    signed_payload: bytes = b""
    signature: bytes = b""


class _Common(TypedDict):
    """The fields every report carries (parsed once, then spread into :class:`Report`)."""

    operation: str
    client_time: int
    nonce: bytes
    certificate_chain: bytes
    signed_payload: bytes
    signature: bytes


def build_signed_element(report: Report) -> str:
    """The element the device signs (serialize first, then sign its UTF-8 bytes)."""
    name = SIGNED_ELEMENT[report.operation]
    kids = "".join(f"<KID>{wrmheader.kid_to_header(k)}</KID>" for k in report.kids)
    if report.operation == ACK:
        specific = (f"<TransactionID>{xmlsafe.b64encode(report.transaction_id or b'')}</TransactionID>"
                    f"<LicenseStorageResults><License><LID>{report.license_id}</LID>"
                    f"<Result>0x{report.result:08x}</Result></License></LicenseStorageResults>")
    elif report.operation == SECURE_STOP:
        specific = (f"<SessionID>{report.license_id}</SessionID><KIDs>{kids}</KIDs>"
                    f"<PlaybackStart>{report.playback_start}</PlaybackStart>"
                    f"<PlaybackStop>{report.playback_stop}</PlaybackStop>")
    else:
        specific = (f"<LicenseID>{report.license_id}</LicenseID><KIDs>{kids}</KIDs>"
                    f"<DeletedAt>{report.deleted_at}</DeletedAt>")
    return (f'<{name} xmlns="{PROTOCOLS_NS}" Id="SignedData"><Version>1</Version>{specific}'
            f"<ClientTime>{report.client_time}</ClientTime>"
            f"<ReportNonce>{xmlsafe.b64encode(report.nonce)}</ReportNonce>"
            f"<DeviceCertificateChain>{xmlsafe.b64encode(report.certificate_chain)}</DeviceCertificateChain>"
            f"</{name}>")


def build_request(operation: str, signed_xml: str, signature: bytes) -> bytes:
    return signed_request(operation, signed_xml, signature)


def _license_id(value: str) -> str:
    value = value.strip().lower()
    if len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
        raise malformed("the license id must be 32 hex digits")
    return value


def _kids(element: Element) -> tuple[bytes, ...]:
    kids = tuple(wrmheader.kid_from_header((k.text or "").strip())
                 for k in xmlsafe.children(xmlsafe.require(element, "KIDs"), "KID"))
    if not kids:
        raise malformed("the report names no KID")
    return kids


def parse_report(operation: Element, body: bytes) -> Report:
    name = xmlsafe.local(operation.tag)
    if name not in SIGNED_ELEMENT:
        raise malformed(f"{name} is not a report operation")
    part = signed_part(operation, body, SIGNED_ELEMENT[name])
    el = part.element
    if xmlsafe.text(el, "Version") != "1":
        raise malformed("unsupported report version")
    common = _Common(
        operation=name,
        client_time=xmlsafe.integer(xmlsafe.text(el, "ClientTime"), "ClientTime"),
        nonce=xmlsafe.b64decode(xmlsafe.text(el, "ReportNonce"), "ReportNonce", size=16),
        certificate_chain=xmlsafe.b64decode(xmlsafe.text(el, "DeviceCertificateChain"), "DeviceCertificateChain"),
        signed_payload=part.raw, signature=part.signature,
    )
    if name == ACK:
        results = xmlsafe.children(xmlsafe.require(el, "LicenseStorageResults"), "License")
        if len(results) != 1:
            raise malformed("the acknowledgement must report exactly one license")
        try:
            result = int(xmlsafe.text(results[0], "Result"), 16)
        except ValueError as exc:
            raise malformed("Result is not a hex status") from exc
        return Report(license_id=_license_id(xmlsafe.text(results[0], "LID")), kids=(),
                      transaction_id=xmlsafe.b64decode(xmlsafe.text(el, "TransactionID"), "TransactionID"),
                      result=result, **common)
    if name == SECURE_STOP:
        start = xmlsafe.integer(xmlsafe.text(el, "PlaybackStart"), "PlaybackStart")
        stop = xmlsafe.integer(xmlsafe.text(el, "PlaybackStop"), "PlaybackStop")
        if stop < start:
            raise malformed("PlaybackStop is before PlaybackStart")
        return Report(license_id=_license_id(xmlsafe.text(el, "SessionID")), kids=_kids(el),
                      playback_start=start, playback_stop=stop, **common)
    return Report(license_id=_license_id(xmlsafe.text(el, "LicenseID")), kids=_kids(el),
                  deleted_at=xmlsafe.integer(xmlsafe.text(el, "DeletedAt"), "DeletedAt"), **common)


# ---------------------------------------------------------------- answers

@dataclass(frozen=True)
class ReportAnswer:
    operation: str
    license_id: str
    nonce: bytes
    status: str  # acknowledged | recorded | released | already-released


def build_answer(answer: ReportAnswer) -> bytes:
    op = answer.operation
    return envelope(
        f'<{op}Response xmlns="{PROTOCOLS_NS}"><{op}Result><Response>'
        f'<{RESPONSE_ELEMENT[op]} xmlns="{MESSAGES_NS}"><LicenseID>{answer.license_id}</LicenseID>'
        f"<ReportNonce>{xmlsafe.b64encode(answer.nonce)}</ReportNonce><Status>{xmlsafe.escape(answer.status)}</Status>"
        f"</{RESPONSE_ELEMENT[op]}></Response></{op}Result></{op}Response>"
    )


def parse_answer(operation: str, body: bytes) -> ReportAnswer:
    root = xmlsafe.parse(body, what="report response", limit=64 * 1024)
    el = xmlsafe.path(root, "Body", f"{operation}Response", f"{operation}Result", "Response",
                      RESPONSE_ELEMENT[operation])
    return ReportAnswer(
        operation=operation,
        license_id=_license_id(xmlsafe.text(el, "LicenseID")),
        nonce=xmlsafe.b64decode(xmlsafe.text(el, "ReportNonce"), "ReportNonce", size=16),
        status=xmlsafe.text(el, "Status"),
    )
