"""Which SOAP operation a PlayReady-style request asks for (sans-I/O)."""

from __future__ import annotations

from license_server.errors import DrmError, ErrorCode, malformed
from license_server.protocols.playready import PROTOCOLS_NS, xmlsafe


def operation_name(operation: xmlsafe.Element, soap_action: str | None) -> str:
    """The operation's local name (``AcquireLicense``...); the SOAPAction header, if sent, must agree.

    ``UNSUPPORTED_REQUEST`` for a SOAPAction outside the PlayReady protocols namespace,
    a malformed challenge when the header and the ``soap:Body`` operation disagree.
    """
    name = xmlsafe.local(operation.tag)
    if soap_action is None:
        return name
    value = soap_action.strip().strip('"')
    prefix = PROTOCOLS_NS + "/"
    if not value.startswith(prefix):
        raise DrmError(ErrorCode.UNSUPPORTED_REQUEST, f"SOAPAction {value!r} is not a PlayReady protocol action")
    action = value[len(prefix):]
    if action != name:
        raise malformed(f"SOAPAction {action} does not match the {name} operation in the body")
    return name
