"""PlayReady ``AcquirePackagingData``: the SOAP web method ``shaka-packager
--enable_playready_encryption --playready_server_url URL --program_identifier ID`` calls (sans-I/O).

Request (SOAP 1.1)::

    Envelope/Body/AcquirePackagingData[xmlns=http://schemas.microsoft.com/DRM/2007/03/protocols]
      /challenge[xmlns=.../AcquirePackagingData/v1.0]
        /ProtectionSystems/ProtectionSystemId          9A04F079-9840-4286-AB92-E65BE0885F95
        /StreamProtectionRequests/StreamInformation/ProgramIdentifier, OffsetFromProgramStart

Answer: ``AcquirePackagingDataResponse/AcquirePackagingDataResult`` with the
content key (``KeyId``, the KID as a UUID in byte order; ``KeyData``, the key
in base64) and the protection-system data (``ProtectionSystemId``; ``Data``,
the PlayReady Object holding the WRMHEADER, in base64) that a packager puts in
the PlayReady PSSH. Shaka Packager reads the first ``KeyId``, ``KeyData`` and
``Data`` elements, unprefixed, so the answer uses the default namespace.
Errors are SOAP Faults with our stable code in ``detail``.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from license_server.errors import DrmError, ErrorCode
from license_server.protocols.keyserver.xmlbody import parse_body

MAX_BODY_BYTES = 64 * 1024
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
PROTOCOLS_NS = "http://schemas.microsoft.com/DRM/2007/03/protocols"
CHALLENGE_NS = PROTOCOLS_NS + "/AcquirePackagingData/v1.0"
PLAYREADY_SYSTEM_ID = "9A04F079-9840-4286-AB92-E65BE0885F95"
MAX_PROGRAM_IDENTIFIER = 256


@dataclass(frozen=True)
class PackagingRequest:
    program_identifier: str
    protection_systems: tuple[str, ...]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(element: Element, name: str) -> Element | None:
    return next((e for e in element.iter() if _local(e.tag) == name), None)


def parse_request(body: bytes) -> PackagingRequest:
    """The program identifier (our content id) an AcquirePackagingData request asks keys for."""
    root = parse_body(body)
    operation = _find(root, "AcquirePackagingData")
    if _local(root.tag) != "Envelope" or operation is None:
        raise DrmError(ErrorCode.KEYSERVER_MALFORMED_REQUEST, "expected a SOAP Envelope with AcquirePackagingData")
    systems = tuple((e.text or "").strip().upper() for e in operation.iter() if _local(e.tag) == "ProtectionSystemId")
    if systems and PLAYREADY_SYSTEM_ID not in systems:
        raise DrmError(ErrorCode.KEYSERVER_MALFORMED_REQUEST, "the request asks for no PlayReady protection system")
    program = _find(operation, "ProgramIdentifier")
    value = (program.text or "").strip() if program is not None else ""
    if not value:
        raise DrmError(ErrorCode.KEYSERVER_CONTENT_ID_MISSING, "StreamInformation names no ProgramIdentifier")
    if len(value.encode("utf-8")) > MAX_PROGRAM_IDENTIFIER:
        raise DrmError(ErrorCode.KEYSERVER_MALFORMED_REQUEST, "ProgramIdentifier is too long")
    return PackagingRequest(value, systems)


def build_response(program_identifier: str, kid: bytes, key: bytes, pro: bytes) -> bytes:
    """The AcquirePackagingData answer: one content key and the PlayReady Object for it."""
    key_id = str(uuid.UUID(bytes=kid)).upper()
    inner = (
        f'<AcquirePackagingDataResponse xmlns="{PROTOCOLS_NS}"><AcquirePackagingDataResult>'
        f"<StreamProtectionResponses><StreamProtectionResponse>"
        f"<StreamInformation><ProgramIdentifier>{escape(program_identifier)}</ProgramIdentifier>"
        f"<OffsetFromProgramStart>P0S</OffsetFromProgramStart></StreamInformation>"
        f"<ContentKeys><ContentKey><KeyId>{key_id}</KeyId><KeyData>{_b64(key)}</KeyData></ContentKey></ContentKeys>"
        f"<ProtectionSystemSpecificData><ProtectionSystem><ProtectionSystemId>{PLAYREADY_SYSTEM_ID}"
        f"</ProtectionSystemId><Data>{_b64(pro)}</Data></ProtectionSystem></ProtectionSystemSpecificData>"
        f"</StreamProtectionResponse></StreamProtectionResponses>"
        f"</AcquirePackagingDataResult></AcquirePackagingDataResponse>"
    )
    return _envelope(inner)


def build_fault(error: DrmError) -> bytes:
    """A SOAP 1.1 Fault (client fault for 4xx) with our stable code in ``detail``."""
    fault = "soap:Client" if error.status < 500 else "soap:Server"
    inner = (f"<soap:Fault><faultcode>{fault}</faultcode><faultstring>{escape(error.message)}</faultstring>"
             f"<detail><Exception><ErrorCode>{error.code.value}</ErrorCode></Exception></detail></soap:Fault>")
    return _envelope(inner)


def _envelope(inner: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP_NS}">'
            f"<soap:Body>{inner}</soap:Body></soap:Envelope>").encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
