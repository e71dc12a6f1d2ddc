"""PlayReady-style messages: SOAP challenge, license response, fault, reports, XMR, WRMHEADER, PRO."""

from __future__ import annotations

import struct
from typing import Any

from license_server.errors import DrmError
from license_server.inspect.model import Context, Decoded, NotMine, secret
from license_server.inspect.values import plain
from license_server.protocols.playready import certificates, faults, reports, soap, wrmheader, xmlsafe, xmr

REPORT_FORMATS = {reports.ACK: "acknowledgement", reports.SECURE_STOP: "secure_stop",
                  reports.SECURE_DELETE: "secure_delete"}


def header_view(header: wrmheader.WrmHeader) -> dict[str, Any]:
    return {"version": header.version, "la_url": header.la_url, "lui_url": header.lui_url, "ds_id": header.ds_id,
            "keys": [{"kid": k.kid.hex(), "kid_in_header": wrmheader.kid_to_header(k.kid), "algid": k.algid,
                      "checksum": k.checksum.hex() if k.checksum else None} for k in header.keys]}


def chain_view(data: bytes) -> Any:
    try:
        return [{k: v for k, v in plain(c).items() if k not in ("body",)}
                | {"public_key": c.public_key.hex()[:32] + "...", "signature": f"{len(c.signature)} bytes"}
                for c in certificates.decode_chain(data)]
    except (DrmError, certificates.CertificateError, ValueError, struct.error) as exc:
        return f"<{len(data)} bytes; does not decode: {exc}>"


def xmr_view(data: bytes) -> dict[str, Any]:
    parsed = xmr.decode(data)
    lic = plain(parsed.license)
    for key in lic["keys"]:
        key.pop("encrypted_key", None)
    for entry, key in zip(lic["keys"], parsed.license.keys):
        entry["encrypted_key"] = secret(key.encrypted_key, "ECIES-encrypted content key")
    return {"license_id": parsed.license.license_id, **lic, "signature": f"AES-CMAC, {len(parsed.signature)} bytes"}


def decode_xmr(data: bytes, context: Context) -> Decoded:
    if data[:4] != xmr.MAGIC:
        raise NotMine("no XMR magic")
    try:
        view = xmr_view(data)
    except DrmError as exc:
        raise NotMine(f"XMR magic, but {exc.message}") from exc
    return Decoded("playready.xmr", f"PlayReady-style XMR license {view['license_id']}", view, dialect="playready",
                   notes=["content keys are ECIES-encrypted to the device; their values are never shown"])


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
        return _challenge(operation, data)
    if op == "AcquireLicenseResponse":
        return _response(data)
    if op == "Fault":
        fault = faults.parse_fault(data)
        assert fault is not None
        return Decoded("playready.fault", f"PlayReady-style SOAP Fault {faults.status_name(fault.status_code)}",
                       {"status_code": f"0x{fault.status_code:08X}", "status_name": faults.status_name(fault.status_code),
                        "message": fault.message, "emulator_error_code": fault.error_code}, dialect="playready")
    if op in reports.SIGNED_ELEMENT:
        report = reports.parse_report(operation, data)
        view = plain(report)
        view["certificate_chain"] = chain_view(report.certificate_chain)
        view.pop("signed_payload", None)
        view["signature"] = f"{len(report.signature)} bytes"
        return Decoded(f"playready.{REPORT_FORMATS[op]}", f"PlayReady-style {op} report", view, dialect="playready")
    asked = op.removesuffix("Response")
    if asked in reports.SIGNED_ELEMENT:
        answer = reports.parse_answer(asked, data)
        return Decoded(f"playready.{REPORT_FORMATS[asked]}_answer", f"PlayReady-style {op}: {answer.status}",
                       plain(answer), dialect="playready")
    raise NotMine(f"SOAP operation {op} is not ours")


def _challenge(operation: Any, data: bytes) -> Decoded:
    parsed = soap.parse_license_challenge(operation, data)
    claims = parsed.challenge.device
    assert claims is not None
    fields = {
        "operation": "AcquireLicense", "la_version": xmlsafe.text(soap.signed_part(operation, data, "LA").element,
                                                                  "Version"),
        "wrmheader": header_view(parsed.header), "license_nonce": parsed.license_nonce.hex(),
        "client_time": parsed.challenge.request_time, "client_version": parsed.client_version,
        "custom_data": parsed.custom_data, "license_kind": parsed.challenge.license_kind.value,
        "max_hdcp": claims.max_hdcp.name,
        "device_certificate_chain": chain_view(claims.certificate_chain),
        "device_attestation": plain(claims.evidence) if claims.evidence else None,
        "signature": f"ECDSA-SHA256, {len(claims.signature)} bytes",
    }
    decoded = Decoded("playready.challenge", "PlayReady-style AcquireLicense challenge", fields, dialect="playready")
    decoded.challenge, decoded.extra = parsed.challenge, parsed
    return decoded


def _response(data: bytes) -> Decoded:
    response = soap.parse_license_response(data)
    licenses = []
    for raw in response.licenses:
        try:
            licenses.append(xmr_view(raw))
        except DrmError as exc:
            licenses.append({"error": exc.message})
    fields = {"licenses": licenses, "license_nonce": response.license_nonce.hex() if response.license_nonce else None,
              "nonce_binding": response.binding.hex() if response.binding else None,
              "response_id": response.response_id.hex() if response.response_id else None,
              "transaction_id": response.transaction_id.hex() if response.transaction_id else None,
              "client_info": response.client_info}
    return Decoded("playready.license_response", f"PlayReady-style AcquireLicenseResponse ({len(licenses)} license"
                   f"{'s' * (len(licenses) != 1)})", fields, dialect="playready",
                   notes=["content keys are ECIES-encrypted to the device; their values are never shown"])
