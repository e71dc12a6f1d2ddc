"""SOAP faults and the DRM_E status codes of the PlayReady-style dialect.

The real service answers every refusal with HTTP 500 and a SOAP 1.1 Fault
whose ``detail/Exception/StatusCode`` holds an HRESULT; so do we, and only
real DRM_E values go there (the table below; the names are the PlayReady
Porting Kit's). Several of our stable codes share one DRM_E value, so our
:class:`ErrorCode` travels beside it: in the ``X-DRM-Error-Code`` header and
in ``detail/Exception/EmulatorErrorCode``, an element real clients ignore.
Codes without an entry fall back to DRM_E_SERVER_SERVICE_SPECIFIC (client-side
refusals) or DRM_E_SERVER_INTERNAL_ERROR (server errors).
"""

from __future__ import annotations

from dataclasses import dataclass

from license_server.errors import DrmError, ErrorCode
from license_server.protocols.playready import SOAP_ENV_NS, xmlsafe

FAULT_HTTP_STATUS = 500
INTERNAL = (0x8004C600, "DRM_E_SERVER_INTERNAL_ERROR")
SERVICE_SPECIFIC = (0x8004C604, "DRM_E_SERVER_SERVICE_SPECIFIC")

STATUS_CODES: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.MALFORMED_CHALLENGE: (0x8004C601, "DRM_E_SERVER_INVALID_MESSAGE"),
    ErrorCode.CHALLENGE_TOO_LARGE: (0x8004C601, "DRM_E_SERVER_INVALID_MESSAGE"),
    ErrorCode.UNSUPPORTED_REQUEST: SERVICE_SPECIFIC,
    ErrorCode.INVALID_POLICY_OVERRIDE: SERVICE_SPECIFIC,
    ErrorCode.CERTIFICATE_INVALID: (0x8004C035, "DRM_E_INVALID_DEVICE_CERTIFICATE"),
    ErrorCode.SIGNATURE_INVALID: (0x80040E8A, "DRM_E_P256_INVALID_SIGNATURE"),
    ErrorCode.DEVICE_REVOKED: (0x8004C065, "DRM_E_DEVCERT_REVOKED"),
    ErrorCode.DEVICE_ROOTED: (0x8004C053, "DRM_E_CERTIFICATE_REVOKED"),
    ErrorCode.BOOTLOADER_UNLOCKED: (0x8004C053, "DRM_E_CERTIFICATE_REVOKED"),
    ErrorCode.APP_NOT_GENUINE: (0x8004C053, "DRM_E_CERTIFICATE_REVOKED"),
    ErrorCode.ATTESTATION_INVALID: (0x8004C601, "DRM_E_SERVER_INVALID_MESSAGE"),
    ErrorCode.REPLAYED_CHALLENGE: (0x8004C01C, "DRM_E_CLIENTTIMEINVALID"),
    ErrorCode.SECURITY_LEVEL_TOO_LOW: (0x8004A004, "DRM_E_DEVICE_SECURITY_LEVEL_TOO_LOW"),
    ErrorCode.OFFLINE_NOT_ALLOWED: (0x8004C00B, "DRM_E_RIGHTS_NOT_AVAILABLE"),
    ErrorCode.CONTENT_NOT_FOUND: (0x8004C00C, "DRM_E_LICENSEMISMATCH"),
    ErrorCode.KEY_NOT_FOUND: (0x8004C00C, "DRM_E_LICENSEMISMATCH"),
    ErrorCode.LICENSE_NOT_FOUND: (0x8004C611, "DRM_E_SERVER_INVALID_LICENSEID"),
    ErrorCode.LICENSE_EXPIRED: (0x8004C009, "DRM_E_LICENSE_EXPIRED"),
    ErrorCode.LICENSE_RELEASED: (0x8004C611, "DRM_E_SERVER_INVALID_LICENSEID"),
    ErrorCode.RENEWAL_NOT_ALLOWED: (0x8004C00B, "DRM_E_RIGHTS_NOT_AVAILABLE"),
    ErrorCode.STREAM_LIMIT_REACHED: (0x8004C602, "DRM_E_SERVER_DEVICE_LIMIT_REACHED"),
    ErrorCode.STREAM_EVICTED: SERVICE_SPECIFIC,
    ErrorCode.INTERNAL_ERROR: INTERNAL,
}
# Public codes the cfg errorcode: hook recognises without an ErrorCode of their own.
PUBLIC_ONLY: dict[int, str] = {
    0x8004C603: "DRM_E_SERVER_INDIV_REQUIRED",
    0x8004C605: "DRM_E_SERVER_DOMAIN_REQUIRED",
    0x8004C606: "DRM_E_SERVER_RENEW_DOMAIN",
    0x8004C60B: "DRM_E_SERVER_PROTOCOL_VERSION_MISMATCH",
}


def status_for(code: ErrorCode) -> tuple[int, str]:
    if code in STATUS_CODES:
        return STATUS_CODES[code]
    return INTERNAL if code.status >= 500 else SERVICE_SPECIFIC


def code_for_status(status: int) -> ErrorCode | None:
    """The stable code whose table entry is ``status`` (first match), if any."""
    return next((code for code, (value, _) in STATUS_CODES.items() if value == status), None)


def status_name(status: int) -> str:
    for value, name in STATUS_CODES.values():
        if value == status:
            return name
    return PUBLIC_ONLY.get(status, "DRM_E_UNKNOWN")


class PlayReadyFault(DrmError):
    """A refusal that must carry a specific DRM_E status (e.g. the ``errorcode:`` hook)."""

    def __init__(self, code: ErrorCode, message: str, status_code: int) -> None:
        super().__init__(code, message)
        self.status_code = status_code


def build_fault(error: DrmError, *, actor: str = "") -> bytes:
    status = getattr(error, "status_code", None) or status_for(error.code)[0]
    name = status_name(status)
    e = xmlsafe.escape
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body><soap:Fault>'
        "<faultcode>soap:Server</faultcode>"
        f"<faultstring>System.Web.Services.Protocols.SoapException: {e(name)}: {e(error.message)}</faultstring>"
        f"<faultactor>{e(actor)}</faultactor>"
        f"<detail><Exception><StatusCode>0x{status:08x}</StatusCode>"
        f"<EmulatorErrorCode>{e(error.code.value)}</EmulatorErrorCode></Exception></detail>"
        "</soap:Fault></soap:Body></soap:Envelope>"
    ).encode()


@dataclass(frozen=True)
class Fault:
    status_code: int
    message: str
    error_code: str | None  # our stable code, if the server sent it


def parse_fault(body: bytes) -> Fault | None:
    """The fault in a SOAP response, or None if the body is not a fault."""
    root = xmlsafe.parse(body, what="SOAP response", limit=1024 * 1024)
    soap_body = xmlsafe.child(root, "Body")
    fault = xmlsafe.child(soap_body, "Fault") if soap_body is not None else None
    if fault is None:
        return None
    message = xmlsafe.optional_text(fault, "faultstring") or ""
    detail = xmlsafe.child(fault, "detail")
    exception = xmlsafe.child(detail, "Exception") if detail is not None else None
    raw_status = xmlsafe.optional_text(exception, "StatusCode") if exception is not None else None
    try:
        status = int(raw_status, 16) if raw_status else INTERNAL[0]
    except ValueError:
        status = INTERNAL[0]
    code = xmlsafe.optional_text(exception, "EmulatorErrorCode") if exception is not None else None
    return Fault(status, message, code)
