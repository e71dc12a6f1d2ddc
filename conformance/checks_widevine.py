"""Checks whose Widevine-style implementation works on the protobuf messages themselves.

They register the check (and its Clear Key *not applicable* reason); the
FairPlay- and PlayReady-style implementations are added in
:mod:`conformance.checks_dialects`. Every check talks to the target over real
HTTP (``Context.server``) and decides from what the server answered and what
the emulated device made of it.
"""

from __future__ import annotations

from conformance import references as ref
from conformance.catalog import CLEARKEY_NO_IDENTITY, Context, Outcome, check
from conformance.widevine_support import CONTENT, exchange, key_table, make_device, post_raw
from device_emulator.cdm.widevine import PendingRequest, WidevineCdm
from device_emulator.errors import CdmError
from license_server.core.model import Hdcp, LicenseKind
from license_server.protocols.widevine import codec
from license_server.protocols.widevine import license_protocol_pb2 as pb

WV = ("widevine",)
KC = pb.License.KeyContainer
PERSISTENT, TEMPORARY = LicenseKind.PERSISTENT, LicenseKind.TEMPORARY
NO_IDENTITY = {"clearkey": CLEARKEY_NO_IDENTITY}
NO_NONCE = {"clearkey": "a W3C Clear Key request carries no nonce, signature or device identity, so a replay "
                        "cannot be told apart from a new request (by design of EME Clear Key)"}
NO_LEVELS = {"clearkey": "W3C Clear Key has no security levels or output protection (EME 'org.w3.clearkey')"}
UNBOUND = {"clearkey": "a W3C Clear Key license is a plain JWK set, bound to no device and carrying no signature "
                       "(by design of EME Clear Key)"}

# ----------------------------------------------------------------- attestation


@check("ATT-005", "Replayed challenge is refused", systems=WV, severity="high",
       reference=ref.cite(ref.WIDEVINE + " (request id)", ref.FAIRPLAY + " (anti-replay seed)",
                          ref.PLAYREADY + " (LicenseNonce)"),
       not_applicable=NO_NONCE,
       description="The same signed challenge (Widevine request, FairPlay SPC, PlayReady AcquireLicense) sent twice: "
                   "the first gets a license, the second REPLAYED_CHALLENGE.")
def replayed_challenge_refused(ctx: Context) -> Outcome:
    """The same signed challenge sent twice: the first gets a license, the second REPLAYED_CHALLENGE."""
    device = make_device(ctx, "L1")
    pending = WidevineCdm(device).build_challenge(CONTENT, TEMPORARY, privacy=False)
    first, ev1 = post_raw(ctx, pending.body, "fresh signed challenge")
    second, ev2 = post_raw(ctx, pending.body, "the same challenge again")
    evidence = {"first": ev1, "second": ev2, "expected": "first 200, second 403 REPLAYED_CHALLENGE"}
    if first.status != 200:
        return Outcome.failed(f"the fresh challenge was not granted ({first.status} {first.error_code}), "
                              "so replay protection cannot be told apart from a broken exchange", **evidence)
    if second.status == 403 and second.error_code == "REPLAYED_CHALLENGE":
        return Outcome.passed("replay refused with 403 REPLAYED_CHALLENGE", **evidence)
    return Outcome.failed(f"replay answered {second.status} {second.error_code}", **evidence)


@check("ATT-006", "Challenge modified after signing is refused", systems=WV, severity="critical",
       reference=ref.cite(ref.WIDEVINE + " (SignedMessage)", ref.FAIRPLAY_DOC + ", TLLV (device signature)",
                          ref.PLAYREADY_DOC + ", The license challenge (signed LA)"),
       not_applicable=NO_IDENTITY,
       description="A device's HDCP claim raised after it signed the challenge (in the LicenseRequest, inside the "
                   "encrypted SPC payload, in the LA element with its digest recomputed): SIGNATURE_INVALID.")
def modified_challenge_refused(ctx: Context) -> Outcome:
    """Raising the claimed HDCP version after the device signed the request must give SIGNATURE_INVALID."""
    device = make_device(ctx, "L1", hdcp=Hdcp.V1)
    pending = WidevineCdm(device).build_challenge(CONTENT, TEMPORARY, privacy=False)
    signed = pb.SignedMessage.FromString(pending.body)
    request = pb.LicenseRequest.FromString(signed.msg)
    request.client_id.client_capabilities.max_hdcp_version = pb.ClientIdentification.ClientCapabilities.HDCP_V2_3
    signed.msg = request.SerializeToString()
    reply, evidence = post_raw(ctx, signed.SerializeToString(), "signed challenge, max_hdcp raised afterwards")
    evidence["expected"] = "403 SIGNATURE_INVALID"
    if reply.status == 403 and reply.error_code == "SIGNATURE_INVALID":
        return Outcome.passed("modified challenge refused", **evidence)
    return Outcome.failed(f"modified challenge answered {reply.status} {reply.error_code}", **evidence)


@check("ATT-007", "Attestation evidence from another request is refused", systems=WV, severity="high",
       reference=ref.ATTESTATION + " (the evidence nonce binds the request id)", not_applicable=NO_IDENTITY,
       description="A correctly signed challenge whose attestation evidence was produced for another request "
                   "(its nonce binds another request id): ATTESTATION_INVALID.")
def replayed_evidence_refused(ctx: Context) -> Outcome:
    """Evidence copied from an earlier challenge into a fresh, correctly signed one: ATTESTATION_INVALID."""
    device = make_device(ctx, "L1")
    cdm = WidevineCdm(device)
    old = pb.LicenseRequest.FromString(pb.SignedMessage.FromString(
        cdm.build_challenge(CONTENT, TEMPORARY, privacy=False).body).msg)
    fresh = pb.LicenseRequest.FromString(pb.SignedMessage.FromString(
        cdm.build_challenge(CONTENT, TEMPORARY, privacy=False).body).msg)
    fresh.client_id.attestation.CopyFrom(old.client_id.attestation)
    msg = fresh.SerializeToString()
    body = pb.SignedMessage(type=pb.SignedMessage.LICENSE_REQUEST, msg=msg, signature=device.tee.sign(msg))
    reply, evidence = post_raw(ctx, body.SerializeToString(), "fresh challenge carrying an older request's evidence")
    evidence["expected"] = "403 ATTESTATION_INVALID"
    if reply.status == 403 and reply.error_code == "ATTESTATION_INVALID":
        return Outcome.passed("replayed evidence refused", **evidence)
    return Outcome.failed(f"replayed evidence answered {reply.status} {reply.error_code}", **evidence)

# ------------------------------------------------------- security levels, outputs


@check("SEC-002", "HD and UHD keys carry their security level and HDCP requirement", systems=WV,
       severity="high", reference=ref.cite(ref.WIDEVINE + " (KeyContainer level and HDCP)",
                                           ref.FAIRPLAY_DOC + ", Business rules (HDCP type and level)",
                                           ref.PLAYREADY_DOC + ", The license (key robustness, output protection)"),
       not_applicable=NO_LEVELS,
       description="For an L1 device, UHD keys need HW_SECURE_ALL and HDCP v2.2; HD keys need HDCP v1 and "
                   "HW_SECURE_CRYPTO (FairPlay-style: baseline, i.e. software robustness, with HDCP Type 0).")
def hd_uhd_levels(ctx: Context) -> Outcome:
    """For an L1 device, HD keys need at least HW_SECURE_CRYPTO and HDCP v1; UHD keys HW_SECURE_ALL and HDCP v2.2."""
    device = make_device(ctx, "L1")
    ex = exchange(ctx, device)
    evidence = ex.evidence(device)
    expected = {"HD": (KC.HW_SECURE_CRYPTO, KC.OutputProtection.HDCP_V1),
                "UHD1": (KC.HW_SECURE_ALL, KC.OutputProtection.HDCP_V2_2)}
    evidence["expected"] = {t: {"level": KC.SecurityLevel.Name(lv), "min_hdcp": KC.OutputProtection.HDCP.Name(h)}
                            for t, (lv, h) in expected.items()}
    if not ex.granted:
        return Outcome.failed(f"an L1 device was refused a streaming license ({ex.code})", **evidence)
    lic = ex.outcome.license  # type: ignore[union-attr]
    got = {k.track_label: (k.level, k.required_protection.hdcp) for k in lic.key if k.type == KC.CONTENT}
    evidence["observed"] = {t: {"level": KC.SecurityLevel.Name(lv), "hdcp": KC.OutputProtection.HDCP.Name(h)}
                            for t, (lv, h) in got.items()}
    problems = [t for t, (lv, h) in expected.items() if t not in got or got[t][0] < lv or got[t][1] < h]
    if problems:
        return Outcome.failed(f"keys without the required level/HDCP: {problems}", **evidence)
    return Outcome.passed("HD and UHD keys carry level and HDCP", **evidence)

# --------------------------------------------------------------------- licenses


@check("LIC-003", "A license copied to another device is unusable", systems=WV, severity="critical",
       reference=ref.cite(ref.WIDEVINE + " (the session key is wrapped to the device's key)", ref.OFFLINE),
       not_applicable=UNBOUND,
       description="A persistent license stored by one device, loaded by a second device: LICENSE_NOT_BOUND.")
def copied_license_unusable(ctx: Context) -> Outcome:
    """A persistent license moved to a second device must not load there: LICENSE_NOT_BOUND."""
    owner, thief = make_device(ctx, "L1"), make_device(ctx, "L1")
    ex = exchange(ctx, owner, CONTENT, PERSISTENT)
    evidence = ex.evidence(owner)
    if not ex.granted:
        return Outcome.failed(f"the owner was refused a persistent license ({ex.code})", **evidence)
    lic = ex.outcome
    try:
        stolen = WidevineCdm(thief).load(lic.request_msg, lic.wrapped_session_key, lic.license_msg,  # type: ignore
                                         lic.signature)  # type: ignore[union-attr]
    except CdmError as exc:
        evidence["copy"] = {"expected": "LICENSE_NOT_BOUND", "observed": exc.code}
        if exc.code == "LICENSE_NOT_BOUND":
            return Outcome.passed("the copy does not load on another device", **evidence)
        return Outcome.failed(f"the copy was refused with {exc.code}, not LICENSE_NOT_BOUND", **evidence)
    evidence["copy"] = {"expected": "LICENSE_NOT_BOUND", "observed": f"loaded {len(key_table(thief, stolen))} keys"}
    return Outcome.failed("the copied license loaded on another device", **evidence)


@check("LIC-004", "A license modified in transit is rejected by the device", systems=WV, severity="critical",
       reference=ref.cite(ref.WIDEVINE + " (HMAC under the server MAC key)", ref.FAIRPLAY_DOC + ", CKC (integrity)",
                          ref.PLAYREADY_DOC + ", The license (AES-CMAC)"), not_applicable=UNBOUND,
       description="A license altered on its way to the device (Widevine: duration extended; FairPlay: a CKC byte "
                   "flipped; PlayReady: the XMR issue date moved) is refused by the device: LICENSE_TAMPERED.")
def modified_license_rejected(ctx: Context) -> Outcome:
    """Extending license_duration in the server's answer must make the device refuse it: LICENSE_TAMPERED."""
    device = make_device(ctx, "L1")
    cdm = WidevineCdm(device)
    pending = cdm.build_challenge(CONTENT, TEMPORARY, privacy=False)
    reply, evidence = post_raw(ctx, pending.body, "fresh signed challenge")
    if reply.status != 200:
        return Outcome.failed(f"the challenge was refused ({reply.status} {reply.error_code})", **evidence)
    signed = pb.SignedMessage.FromString(reply.body)
    lic = pb.License.FromString(signed.msg)
    lic.policy.license_duration_seconds = 10 * 365 * 86400
    signed.msg = lic.SerializeToString()
    evidence["tamper"] = "policy.license_duration_seconds set to 10 years"
    try:
        loaded = cdm.process_license(pending, signed.SerializeToString())
    except CdmError as exc:
        evidence["device"] = {"expected": "LICENSE_TAMPERED", "observed": exc.code}
        if exc.code == "LICENSE_TAMPERED":
            return Outcome.passed("the device rejected the modified license", **evidence)
        return Outcome.failed(f"rejected with {exc.code}, not LICENSE_TAMPERED", **evidence)
    device.tee.close(loaded.handle)
    evidence["device"] = {"expected": "LICENSE_TAMPERED", "observed": "loaded"}
    return Outcome.failed("the device loaded a license modified in transit", **evidence)

# ------------------------------------------------------------ unattested platforms

NO_UNATTESTED = {
    "clearkey": CLEARKEY_NO_IDENTITY,
    "fairplay": "our FairPlay-style SPC always carries attestation evidence; an SPC without it is refused "
                "(ATTESTATION_INVALID), so there is no unattested platform to serve",
    "playready": "our PlayReady-style challenge always carries attestation evidence; one without it is refused "
                 "(ATTESTATION_INVALID), so there is no unattested platform to serve",
}


def _unattested_challenge(device, kind: LicenseKind) -> PendingRequest:
    """The device's challenge with its evidence removed and signed again: what a stock CDM (or a rooted device
    that omits its evidence) sends."""
    honest = WidevineCdm(device).build_challenge(CONTENT, kind, privacy=False)
    request = pb.LicenseRequest.FromString(honest.request_msg)
    request.client_id.ClearField("attestation")
    msg = request.SerializeToString()
    return PendingRequest(codec.sign_message(msg, device.tee.sign(msg)), msg, honest.request_id, kind, CONTENT)


@check("ATT-011", "An unattested client gets no hardware-level keys and no persistent license", systems=WV,
       severity="critical", reference=ref.cite(ref.WIDEVINE + " (PLATFORM_UNVERIFIED)",
                          ref.THIRD_PARTY_CDMS + ", What an unattested client gets, and why"),
       not_applicable=NO_UNATTESTED,
       description="An L1 device's correctly signed challenge without attestation evidence (a stock CDM, or a "
                   "rooted device omitting it): a streaming license, if any, holds software-level keys only and "
                   "cannot persist, and is not HARDWARE_VERIFIED; a persistent request is refused.")
def unattested_software_only(ctx: Context) -> Outcome:
    """Without evidence an L1 certificate earns nothing hardware-level: no HD/UHD keys, no persistent license."""
    device = make_device(ctx, "L1")
    cdm = WidevineCdm(device)
    pending = _unattested_challenge(device, TEMPORARY)
    reply, evidence = post_raw(ctx, pending.body, "L1 device's signed challenge without attestation evidence")
    evidence["expected"] = {"streaming": "software-level keys only (or 403 ATTESTATION_REQUIRED), not persistable",
                            "persistent": "refused (403)"}
    if reply.status == 200:
        try:
            loaded = cdm.process_license(pending, reply.body)
        except CdmError as exc:
            return Outcome.failed(f"the device rejected the license ({exc.code})", **evidence)
        keys = key_table(device, loaded)
        evidence["observed"] = {"keys": keys, "can_persist": loaded.license.policy.can_persist,
                                "platform_verification": loaded.platform_verification}
        device.tee.close(loaded.handle)
        hardware = [k["track"] for k in keys if KC.SecurityLevel.Value(k["robustness"]) > KC.SW_SECURE_CRYPTO]
        if hardware:
            return Outcome.failed(f"the unattested client got hardware-level keys: {hardware}", **evidence)
        if loaded.license.policy.can_persist:
            return Outcome.failed("the unattested client's license may be persisted", **evidence)
        if loaded.platform_verification == "HARDWARE_VERIFIED":
            return Outcome.failed("the unattested client was classified HARDWARE_VERIFIED", **evidence)
    elif not (reply.status == 403 and reply.error_code == "ATTESTATION_REQUIRED"):
        return Outcome.failed(f"the streaming request answered {reply.status} {reply.error_code}", **evidence)
    offline = _unattested_challenge(device, PERSISTENT)
    second, evidence["persistent"] = post_raw(ctx, offline.body, "the same device, persistent, without evidence")
    if second.status == 200:
        return Outcome.failed("the unattested client got a persistent license", **evidence)
    if second.status != 403:
        return Outcome.failed(f"the persistent request answered {second.status} {second.error_code}", **evidence)
    return Outcome.passed(f"software-level keys only; persistent refused ({second.error_code})", **evidence)
