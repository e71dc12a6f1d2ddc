"""``POST /playready/rightsmanager.asmx``: the PlayReady-style SOAP service, thin.

Dispatches on the SOAPAction header (or, without one, on the operation in
``soap:Body``; the two must agree):

* ``.../AcquireLicense`` — the license challenge, through the neutral
  pipeline (``LicenseService.acquire``) with :class:`PlayReadyTrust`;
  ``?cfg=(k:v,...)`` shapes the license like the public test server.
* ``.../AcknowledgeLicense`` — the device confirms it stored a license.
* ``.../ProcessSecureStop`` — end-of-playback report of a non-persistent license.
* ``.../ProcessSecureDelete`` — the record of a persistent license's
  destruction; the server marks it released (``LicenseService.release``).

Every refusal is a SOAP Fault with HTTP 500 (as the real service answers),
a DRM_E status code in ``detail/Exception/StatusCode`` and our stable code in
``X-DRM-Error-Code``.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from aiohttp import web

from license_server import crypto
from license_server.core import attestation
from license_server.core.attestation import ModelInfo
from license_server.core.model import Grant, LicenseChallenge, LicenseKind, RequestKind
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode, malformed
from license_server.http import KEYRING, SERVICE, access_of, error_renderer, read_body
from license_server.protocols.playready import (
    MAX_BODY_BYTES,
    PROTOCOLS_NS,
    SYSTEM,
    faults,
    reports,
    soap,
    testcfg,
    xmlsafe,
)
from license_server.protocols.playready import challenge as challenge_codec
from license_server.protocols.playready import license as license_codec
from license_server.protocols.playready.trust import PlayReadyTrust, neutral_level
from license_server.store import LicenseRecord

log = logging.getLogger(__name__)
TRUST = web.AppKey("playready_trust", PlayReadyTrust)
PATH = "/playready/rightsmanager.asmx"


@error_renderer("playready")
def render_error(error: DrmError) -> web.Response:
    return web.Response(body=faults.build_fault(error, actor=PATH), status=faults.FAULT_HTTP_STATUS,
                        content_type="text/xml", charset="utf-8", headers={ERROR_CODE_HEADER: error.code.value})


def _xml(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="text/xml", charset="utf-8")


def _soap_action(request: web.Request) -> str | None:
    value = request.headers.get("SOAPAction")
    if value is None:
        return None
    value = value.strip().strip('"')
    prefix = PROTOCOLS_NS + "/"
    if not value.startswith(prefix):
        raise DrmError(ErrorCode.UNSUPPORTED_REQUEST, f"SOAPAction {value!r} is not a PlayReady protocol action")
    return value[len(prefix):]


async def rightsmanager(request: web.Request) -> web.Response:
    body = await read_body(request, MAX_BODY_BYTES)
    operation = soap.parse_operation(body)
    name = xmlsafe.local(operation.tag)
    action = _soap_action(request)
    if action is not None and action != name:
        raise malformed(f"SOAPAction {action} does not match the {name} operation in the body")
    if name == "AcquireLicense":
        return _acquire(request, operation, body)
    if name in reports.SIGNED_ELEMENT:
        return _report(request, operation, body)
    raise DrmError(ErrorCode.UNSUPPORTED_REQUEST, f"operation {name} is not supported")


# ------------------------------------------------------------ acquisition

def _acquire(request: web.Request, operation: xmlsafe.Element, body: bytes) -> web.Response:
    service, trust = request.app[SERVICE], request.app[TRUST]
    now = service.clock.now()
    cfg = testcfg.parse_cfg(request.query.get("cfg"), now=now)
    keys = request.app[KEYRING].playready
    parsed = challenge_codec.parse_license_challenge(operation, body,
                                                     server_key_pem=keys.server_key_pem if keys else b"")
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
        chain = trust.chain_info(challenge.device.certificate_chain, now=now)
        return license_codec.build_license(grant, parsed, cfg, chain), {}

    answer = service.acquire(challenge, trust=trust, overrides=cfg.overrides(now), build=build,
                             access=access_of(request))
    return _xml(answer)


def _client_info(request: web.Request, challenge: LicenseChallenge, parsed: challenge_codec.ParsedChallenge,
                 now: int) -> web.Response:
    """``msg:clientinfo``: verify the device like a license request, then echo what we know."""
    service, trust = request.app[SERVICE], request.app[TRUST]
    try:
        device = attestation.verify(challenge, trust=trust, rules=service.rules,
                                    revocations=service.revocations.current(), now=now)
    except DrmError as error:
        service.refused(error, challenge, device_id=None, now=now)
        raise
    chain = trust.chain_info(challenge.device.certificate_chain, now=now)
    return _xml(soap.build_client_info_response({
        "DeviceID": device.device_id, "Model": device.model, "SystemID": str(device.system_id),
        "CertificateSecurityLevel": str(chain.security_level),
        "EffectiveSecurityLevel": str(license_codec.effective_level(device.security_level, chain.security_level)),
        "PlatformVerification": device.verification.value, "MaxHDCP": device.max_hdcp.name,
        "ClientVersion": parsed.client_version, "HeaderVersion": parsed.header.version,
        "PublicKeySHA256": crypto.sha256(device.public_key).hex(),
    }))


# ---------------------------------------------------------------- reports

def _report(request: web.Request, operation: xmlsafe.Element, body: bytes) -> web.Response:
    service, trust, store = request.app[SERVICE], request.app[TRUST], request.app[SERVICE].store
    now = service.clock.now()
    report = reports.parse_report(operation, body)
    challenge = LicenseChallenge(
        system=SYSTEM, kind=RequestKind.RELEASE, license_kind=LicenseKind.PERSISTENT, content_id=None,
        key_ids=report.kids, request_id=report.nonce, request_time=report.client_time, device=None,
        existing_license_id=report.license_id, signature=report.signature, signed_payload=report.signed_payload,
    )
    state: dict[str, str] = {}

    def verify(record: LicenseRecord) -> None:
        """The report is signed by the device the license was issued to, and names its KIDs."""
        chain = trust.chain_info(report.certificate_chain, now=now)
        trust.verify_signature(chain.public_key, report.signed_payload, report.signature)
        if record.device_id != chain.device_id:
            raise DrmError(ErrorCode.LICENSE_NOT_FOUND, "no such license was issued to this device")
        if not {k.hex() for k in report.kids} <= set(record.kids):
            raise malformed("the report names KIDs the license does not hold")
        state["before"] = record.state

    def answer(status: str) -> bytes:
        return reports.build_answer(reports.ReportAnswer(report.operation, report.license_id, report.nonce, status))

    if report.operation == reports.SECURE_DELETE:
        def check_persistent(record: LicenseRecord) -> None:
            if record.kind != LicenseKind.PERSISTENT.value:
                raise DrmError(ErrorCode.UNSUPPORTED_REQUEST, "Secure Delete reports persistent licenses only")
            verify(record)

        body_out = service.release(
            challenge, verify=check_persistent,
            build=lambda grant: answer("already-released" if state.get("before") == "released" else "released"))
        return _xml(body_out)
    try:
        record = _verified_record(service, report, verify, now)
        if report.operation == reports.SECURE_STOP:
            if record.kind != LicenseKind.TEMPORARY.value:
                raise DrmError(ErrorCode.UNSUPPORTED_REQUEST,
                               "Secure Stop reports non-persistent licenses; use Secure Delete for persistent ones")
            played = f"played {report.playback_start}..{report.playback_stop}"
            already = any(entry["event"] == "secure_stop" and (entry["message"] or "").startswith(played + " ")
                          for entry in store.audit_trail(license_id=record.license_id, limit=200))
            if not already:  # a resent report (its answer was lost) is acknowledged, not counted twice
                store.record_lifecycle(
                    record.license_id, event="secure_stop", state=record.state, now=now, system=SYSTEM,
                    first_used_at=report.playback_start,
                    message=f"{played} ({report.playback_stop - report.playback_start} s); "
                            f"report {report.nonce.hex()}")
            return _xml(answer("recorded"))
        if report.transaction_id != bytes.fromhex(record.license_id):
            raise malformed("the acknowledgement's TransactionID is not the license's")
        store.record_lifecycle(record.license_id, event="acknowledged", state=record.state, now=now, system=SYSTEM,
                               message=f"storage result 0x{report.result:08x}; report {report.nonce.hex()}")
        return _xml(answer("acknowledged"))
    except DrmError as error:
        service.refused(error, challenge, device_id=None, now=now)
        raise


def _verified_record(service, report: reports.Report, verify, now: int) -> LicenseRecord:
    record = service.store.license(report.license_id)
    if record is None or record.system != SYSTEM:
        raise DrmError(ErrorCode.LICENSE_NOT_FOUND, "no such license was issued by this server")
    verify(record)
    if abs(now - report.client_time) > service.rules.freshness_window:
        raise DrmError(ErrorCode.REPLAYED_CHALLENGE, "report time outside the freshness window")
    marker = f"report {report.nonce.hex()}"
    if any(marker in (entry.get("message") or "") for entry in service.store.audit_trail(license_id=record.license_id,
                                                                                          limit=1000)):
        raise DrmError(ErrorCode.REPLAYED_CHALLENGE, "this report was already received")
    return record


# ------------------------------------------------------------------ setup

def setup(app: web.Application) -> None:
    keys = app[KEYRING].playready
    if keys is None:
        log.warning("keys/ has no playready/ material: PlayReady-style requests will be refused "
                    "(run `license-server keys init --force`)")
    app[TRUST] = PlayReadyTrust(keys.root_public_key if keys else b"")
    service = app[SERVICE]
    extra = {
        m.system_id: ModelInfo(m.name, m.system_id, neutral_level(m.security_level))
        for m in (keys.models.values() if keys else ()) if m.system_id not in service.rules.models
    }
    if extra:  # models only the PlayReady-style PKI knows (the SL150 test model)
        service.rules = replace(service.rules, models={**service.rules.models, **extra})
    app.router.add_post(PATH, rightsmanager, name="playready.rightsmanager")
