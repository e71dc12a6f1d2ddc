"""PlayReady messages: SOAP challenge, license response, fault, reports, XMR, BCert, WRMHEADER, PRO."""

from __future__ import annotations

import struct

from license_server.errors import DrmError
from license_server.inspect import playready_bcert, playready_challenge, playready_xmr
from license_server.inspect.model import Context, Decoded, NotMine
from license_server.inspect.values import plain
from license_server.protocols.playready import faults, reports, soap, wrmheader, xmlsafe

REPORT_FORMATS = {reports.ACK: "acknowledgement", reports.SECURE_STOP: "secure_stop",
                  reports.SECURE_DELETE: "secure_delete"}


header_view = playready_challenge.header_view
decode_xmr = playready_xmr.decode


def decode_pro(data: bytes, context: Context) -> Decoded:
    if len(data) < 10 or struct.unpack_from("<I", data)[0] != len(data):
        raise NotMine("not a PlayReady Object")
    try:
        header = wrmheader.parse_wrmheader(wrmheader.parse_pro(data))
    except DrmError as exc:
        raise NotMine(exc.message) from exc
    return Decoded("playready.pro", f"PlayReady Object with a WRMHEADER {header.version}",
                   {"wrmheader": header_view(header)}, dialect="playready")


def decode_xml(data: bytes, context: Context) -> Decoded:
    """SOAP envelopes and bare WRMHEADERs."""
    try:
        root = xmlsafe.parse(data, what="XML", limit=1024 * 1024)
    except DrmError as exc:
        raise NotMine(exc.message) from exc
    name = xmlsafe.local(root.tag)
    if name == "WRMHEADER":
        header = wrmheader.parse_wrmheader_element(root)
        return Decoded("playready.wrmheader", f"PlayReady WRMHEADER {header.version}", header_view(header),
                       dialect="playready")
    if name != "Envelope":
        raise NotMine(f"XML root {name} is not ours")
    body = xmlsafe.child(root, "Body")
    operation = next(iter(body), None) if body is not None else None
    if operation is None:
        raise NotMine("empty SOAP body")
    op = xmlsafe.local(operation.tag)
    if op == "AcquireLicense":
        return playready_challenge.decode(operation, data, context.playready_server_key_pem, context)
    if op == "AcquireLicenseResponse":
        return _response(data)
    if op == "Fault":
        fault = faults.parse_fault(data)
        assert fault is not None
        status_name = faults.status_name(fault.status_code)
        return Decoded("playready.fault", f"PlayReady SOAP Fault {status_name} (0x{fault.status_code:08X})",
                       {"status_code": f"0x{fault.status_code:08X}", "status_name": status_name,
                        "message": fault.message, "emulator_error_code": fault.error_code}, dialect="playready")
    if op in reports.SIGNED_ELEMENT:
        report = reports.parse_report(operation, data)
        view = plain(report)
        view["certificate_chain"] = playready_bcert.chain_view(report.certificate_chain, context)
        view.pop("signed_payload", None)
        view["signature"] = f"{len(report.signature)} bytes"
        return Decoded(f"playready.{REPORT_FORMATS[op]}", f"PlayReady-style {op} report", view, dialect="playready")
    asked = op.removesuffix("Response")
    if asked in reports.SIGNED_ELEMENT:
        answer = reports.parse_answer(asked, data)
        return Decoded(f"playready.{REPORT_FORMATS[asked]}_answer", f"PlayReady-style {op}: {answer.status}",
                       plain(answer), dialect="playready")
    raise NotMine(f"SOAP operation {op} is not ours")


def _response(data: bytes) -> Decoded:
    response = soap.parse_license_response(data)
    licenses = []
    for raw in response.licenses:
        try:
            licenses.append(playready_xmr.xmr_view(raw))
        except DrmError as exc:
            licenses.append({"error": exc.message})
    fields = {"licenses": licenses, "license_nonce": response.license_nonce.hex() if response.license_nonce else None,
              "nonce_binding": response.binding.hex() if response.binding else None,
              "response_id": response.response_id.hex() if response.response_id else None,
              "transaction_id": response.transaction_id.hex() if response.transaction_id else None,
              "client_info": response.client_info}
    return Decoded("playready.license_response", f"PlayReady AcquireLicenseResponse ({len(licenses)} license"
                   f"{'s' * (len(licenses) != 1)})", fields, dialect="playready",
                   notes=[playready_xmr.KEY_NOTE])
