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
from license_server.core.freshness import skew_message
from license_server.core.model import Grant, LicenseChallenge, LicenseKind, RequestKind, Robustness, SecurityLevel
from license_server.crypto import ecc
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode, malformed
from license_server.http import KEYRING, SERVICE, access_of, error_renderer, read_body
from license_server.protocols.playready import (
    MAX_BODY_BYTES, PROTOCOLS_NS, SL150, SL2000, SL3000, SYSTEM, faults, reports, soap, testcfg, wrmheader, xmr,
    xmlsafe,
)
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
    parsed = soap.parse_license_challenge(operation, body)
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
        return _build_license(grant, parsed, cfg, trust.chain_info(challenge.device.certificate_chain, now=now)), {}

    answer = service.acquire(challenge, trust=trust, overrides=cfg.overrides(now), build=build,
                             access=access_of(request))
    return _xml(answer)


def _effective_level(grant_level: SecurityLevel, certified: int) -> int:
    """The certificate's level, capped at SL2000 when attestation downgraded the device to software."""
    return certified if grant_level is SecurityLevel.L1 else min(certified, SL2000)


def _build_license(grant: Grant, parsed: soap.ParsedChallenge, cfg: testcfg.TestServerCfg, chain) -> bytes:
    device = grant.device
    assert device is not None
    keys = grant.keys
    if cfg.content_key is not None and cfg.kid is not None:
        keys = (replace(keys[0], kid=cfg.kid, key=cfg.content_key),)
    device_level = _effective_level(device.security_level, chain.security_level)
    needs_hardware = any(k.robustness >= Robustness.HW_SECURE_CRYPTO for k in keys)
    min_level = cfg.min_security_level or (SL3000 if needs_hardware else SL150)
    if device_level < min_level:
        raise DrmError(ErrorCode.SECURITY_LEVEL_TOO_LOW,
                       f"the license needs security level {min_level}; this device is SL{device_level}")
    by_kid = {k.kid: k for k in parsed.header.keys}
    for key in keys:
        header_key = by_kid.get(key.kid)
        if header_key is not None and cfg.content_key is None and not wrmheader.checksum_matches(header_key, key.key):
            raise malformed(f"the WRMHEADER CHECKSUM of KID {key.kid.hex()} does not match its content key")
    integrity_key = crypto.random_bytes(16)
    rights_id = bytes.fromhex(grant.license_id)
    content_keys = tuple(
        xmr.ContentKey(
            kid=k.kid,
            cipher=cfg.cipher or (by_kid[k.kid].algid if k.kid in by_kid and by_kid[k.kid].algid else "AESCTR"),
            track=k.track.value, robustness=int(k.robustness), hdcp=int(k.hdcp),
            encrypted_key=ecc.ecies_encrypt(device.public_key, integrity_key + k.key,
                                            xmr.key_context(rights_id, k.kid)),
        )
        for k in keys
    )
    policy = grant.policy
    durations = [d for d in (policy.rental_duration, policy.license_duration) if d]
    persistent = grant.kind is LicenseKind.PERSISTENT
    lic = xmr.XmrLicense(
        rights_id=rights_id, issue_date=grant.issued_at, persistent=persistent, min_security_level=min_level,
        keys=content_keys, device_key_digest=crypto.sha256(device.public_key),
        begin=cfg.begin_date or 0, end=grant.issued_at + min(durations) if durations else 0,
        expire_after_first_play=policy.playback_duration, real_time_expiration=cfg.real_time,
        removal_date=cfg.removal_date or 0, nonce=None if persistent else parsed.license_nonce,
        play_right=cfg.play_right and policy.can_play, platform_verification=device.verification.value,
        output_protection=cfg.output_protection,
    )
    data = xmr.encode(lic, integrity_key)
    return soap.build_license_response(
        [data], response_id=crypto.random_bytes(16),
        license_nonce=parsed.license_nonce if persistent else None,
        binding=soap.nonce_binding(integrity_key, parsed.license_nonce, data) if persistent else None,
        transaction_id=rights_id if persistent else None,
    )


def _client_info(request: web.Request, challenge: LicenseChallenge, parsed: soap.ParsedChallenge,
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
        "EffectiveSecurityLevel": str(_effective_level(device.security_level, chain.security_level)),
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
        raise DrmError(ErrorCode.REPLAYED_CHALLENGE,
                       skew_message("report time", report.client_time, now, service.rules.freshness_window))
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
