"""``POST /playready/rightsmanager.asmx``: the PlayReady-style SOAP service, thin.

Dispatches on the SOAPAction header (or, without one, on the operation in
``soap:Body``; the two must agree):

* ``.../AcquireLicense`` — the license challenge, through the neutral
  pipeline (``LicenseService.acquire``) with :class:`PlayReadyTrust`;
  ``?cfg=(k:v,...)`` shapes the license like the public test server.
  The XMR license is built by ``protocols.playready.license.build_license_response``.
* ``.../AcknowledgeLicense`` (the device stored a license), ``.../ProcessSecureStop``
  (end of playback of a non-persistent license), ``.../ProcessSecureDelete`` (a persistent
  license was destroyed: it is marked released): ``LicenseService.report``.

Every refusal is a SOAP Fault with HTTP 500 (as the real service answers),
a DRM_E status code in ``detail/Exception/StatusCode`` and our stable code in
``X-DRM-Error-Code``.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from aiohttp import web

from license_server import crypto
from license_server.core.model import Grant, LicenseChallenge, LicenseKind, RequestKind
from license_server.core.ports import LicenseRecord
from license_server.core.service import DeviceReport, ReportKind
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode, malformed
from license_server.http import KEYRING, access_of, error_renderer, read_body
from license_server.namespaces import namespace_of
from license_server.protocols.playready import MAX_BODY_BYTES, SYSTEM, faults, reports, soap, testcfg, xmlsafe
from license_server.protocols.playready.challenge import ParsedChallenge, parse_license_challenge
from license_server.protocols.playready.dispatch import operation_name
from license_server.protocols.playready.license import build_license_response, effective_level
from license_server.protocols.playready.trust import PlayReadyTrust

log = logging.getLogger(__name__)
TRUST = web.AppKey("playready_trust", PlayReadyTrust)
PATH = "/playready/rightsmanager.asmx"
REPORT_KINDS = {reports.ACK: ReportKind.ACKNOWLEDGE, reports.SECURE_STOP: ReportKind.SECURE_STOP,
                reports.SECURE_DELETE: ReportKind.SECURE_DELETE}


@error_renderer("playready")
def render_error(error: DrmError) -> web.Response:
    return web.Response(body=faults.build_fault(error, actor=PATH), status=faults.FAULT_HTTP_STATUS,
                        content_type="text/xml", charset="utf-8", headers={ERROR_CODE_HEADER: error.code.value})


def _xml(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="text/xml", charset="utf-8")


async def rightsmanager(request: web.Request) -> web.Response:
    body = await read_body(request, MAX_BODY_BYTES)
    operation = soap.parse_operation(body)
    name = operation_name(operation, request.headers.get("SOAPAction"))
    if name == "AcquireLicense":
        return await _acquire(request, operation, body)
    if name in reports.SIGNED_ELEMENT:
        return _report(request, operation, body)
    raise DrmError(ErrorCode.UNSUPPORTED_REQUEST, f"operation {name} is not supported")


async def _acquire(request: web.Request, operation: xmlsafe.Element, body: bytes) -> web.Response:
    service, trust = namespace_of(request).service, request.app[TRUST]
    now = service.clock.now()
    cfg = testcfg.parse_cfg(request.query.get("cfg"), now=now)
    keys = request.app[KEYRING].playready
    parsed = parse_license_challenge(operation, body, server_key_pem=keys.server_key_pem if keys else b"")
    challenge = parsed.challenge
    if cfg.kid is not None and cfg.content_key is None:
        challenge = replace(challenge, key_ids=(cfg.kid,))
    if cfg.error_code is not None:
        code = faults.code_for_status(cfg.error_code) or ErrorCode.INJECTED_FAULT
        raise faults.PlayReadyFault(code, f"{faults.status_name(cfg.error_code)} (cfg errorcode: test hook)",
                                    cfg.error_code)
    if cfg.revoked:
        error = DrmError(ErrorCode.DEVICE_REVOKED, "the device certificate is revoked (cfg revoked:true test hook)")
        service.refused(error, challenge, device_id=None, now=now)
        raise error
    if cfg.client_info:
        return _client_info(request, challenge, parsed, now)

    def build(grant: Grant) -> tuple[bytes, dict[str, str]]:
        chain = trust.chain_info(challenge.device.certificate_chain if challenge.device else b"", now=now)
        return build_license_response(grant, parsed, cfg, chain), {}

    return _xml(await service.acquire_async(challenge, trust=trust, overrides=cfg.overrides(), build=build,
                                            access=access_of(request)))


def _client_info(request: web.Request, challenge: LicenseChallenge, parsed: ParsedChallenge,
                 now: int) -> web.Response:
    """``msg:clientinfo``: verify the device like a license request, then echo what we know."""
    trust = request.app[TRUST]
    device = namespace_of(request).service.verify_device(challenge, trust)  # refuses a challenge without device claims
    chain = trust.chain_info(challenge.device.certificate_chain if challenge.device else b"", now=now)
    return _xml(soap.build_client_info_response({
        "DeviceID": device.device_id, "Model": device.model, "SystemID": str(device.system_id),
        "CertificateSecurityLevel": str(chain.security_level),
        "EffectiveSecurityLevel": str(effective_level(device.security_level, chain.security_level)),
        "PlatformVerification": device.verification.value, "MaxHDCP": device.max_hdcp.name,
        "ClientVersion": parsed.client_version, "HeaderVersion": parsed.header.version,
        "PublicKeySHA256": crypto.sha256(device.public_key).hex(),
    }))


def _report(request: web.Request, operation: xmlsafe.Element, body: bytes) -> web.Response:
    service, trust = namespace_of(request).service, request.app[TRUST]
    report = reports.parse_report(operation, body)
    challenge = LicenseChallenge(
        system=SYSTEM, kind=RequestKind.RELEASE, license_kind=LicenseKind.PERSISTENT, content_id=None,
        key_ids=report.kids, request_id=report.nonce, request_time=report.client_time, device=None,
        existing_license_id=report.license_id, signature=report.signature, signed_payload=report.signed_payload,
    )

    def verify(record: LicenseRecord) -> None:
        """The report is signed by the device the license was issued to, and names its KIDs."""
        chain = trust.chain_info(report.certificate_chain, now=service.clock.now())
        trust.verify_signature(chain.public_key, report.signed_payload, report.signature)
        if record.device_id != chain.device_id:
            raise DrmError(ErrorCode.LICENSE_NOT_FOUND, "no such license was issued to this device")
        if not {k.hex() for k in report.kids} <= set(record.kids):
            raise malformed("the report names KIDs the license does not hold")
        if report.operation == reports.ACK and report.transaction_id != bytes.fromhex(record.license_id):
            raise malformed("the acknowledgement's TransactionID is not the license's")

    neutral = DeviceReport(REPORT_KINDS[report.operation], report_key=report.nonce.hex(),
                           playback=(report.playback_start, report.playback_stop), storage_result=report.result)
    status = service.report(challenge, neutral, verify=verify)
    return _xml(reports.build_answer(reports.ReportAnswer(report.operation, report.license_id, report.nonce, status)))


def setup(app: web.Application) -> None:
    keys = app[KEYRING].playready
    if keys is None:
        log.warning("keys/ has no playready/ material: PlayReady-style requests will be refused "
                    "(run `license-server keys init --force`)")
    app[TRUST] = PlayReadyTrust(keys.root_public_key if keys else b"")
    app.router.add_post(PATH, rightsmanager, name="playready.rightsmanager")
