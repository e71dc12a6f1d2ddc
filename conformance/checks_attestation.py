"""Attestation, security-level and license checks written once for every dialect with a device identity.

Each runs the dialect's CDM of the reference device emulator through
:mod:`conformance.dialects`. Clear Key has no device identity, certificate or
security level, so these checks are *not applicable* to it, with that reason.
"""

from __future__ import annotations

from conformance import checks_widevine  # noqa: F401  (registers SEC-002 before the generic implementation below)
from conformance import references as ref
from conformance.catalog import CLEARKEY_NO_IDENTITY, DEVICE_SYSTEMS, SYSTEMS, Context, Outcome, check, implements
from conformance.dialects import (
    CONTENT,
    PERSISTENT,
    STREAM_ONLY,
    TEMPORARY,
    Attempt,
    PlayReadyDialect,
    dialect,
    make_device,
)
from conformance.target import revoked
from license_server.core.model import Hdcp, Robustness

ALL_SYSTEMS = SYSTEMS
NO_IDENTITY = {"clearkey": CLEARKEY_NO_IDENTITY}
NO_LEVELS = {"clearkey": "W3C Clear Key has no security levels or output protection: every requested key is "
                         "delivered in the clear JWK set (EME 'org.w3.clearkey')"}
REF_ATT = ref.cite(ref.ATTESTATION, ref.WIDEVINE + " (ClientIdentification, DRM device certificate)")
TABLET_L1 = "emulated-tablet-l1"  # a model no other check uses, so its revocation cannot disturb them
HARDWARE = Robustness.HW_SECURE_CRYPTO


def expect_refusal(ctx: Context, attempt: Attempt, device, code: str) -> Outcome:
    """Passed if the server refused with ``code`` in the dialect's native shape; failed with evidence otherwise."""
    status = dialect(ctx).refusal_status(code)
    evidence = attempt.evidence(device)
    evidence["expected"] = {"status": status, "error_code": code, "license": "none"}
    evidence["observed"] = {"status": attempt.reply.status, "error_code": attempt.reply.error_code,
                            "license": "granted" if attempt.granted else "none"}
    if attempt.granted:
        return Outcome.failed(f"the server granted a license; expected a refusal with {code}", **evidence)
    if (attempt.reply.status, attempt.reply.error_code) != (status, code):
        return Outcome.failed(f"refused, but with {attempt.reply.status} {attempt.reply.error_code}; "
                              f"expected {status} {code}", **evidence)
    return Outcome.passed(f"refused with {status} {code}", **evidence)


def _flagged(ctx: Context, code: str, **flags: bool) -> Outcome:
    device = make_device(ctx, "L1", hdcp=Hdcp.V2_2, model=None, **flags)  # the defaults, named so only flags remain
    return expect_refusal(ctx, dialect(ctx).acquire(ctx, device), device, code)

# ----------------------------------------------------------------- attestation


@check("ATT-001", "Rooted device is refused", systems=DEVICE_SYSTEMS, severity="critical",
       reference=f"{REF_ATT} (root indicators)", not_applicable=NO_IDENTITY)
def rooted_refused(ctx: Context) -> Outcome:
    """An L1 device reporting root indicators (su binary, Magisk) must get no license: DEVICE_ROOTED."""
    return _flagged(ctx, "DEVICE_ROOTED", rooted=True)


@check("ATT-002", "Unlocked bootloader is refused", systems=DEVICE_SYSTEMS, severity="critical",
       reference=f"{REF_ATT} (verified boot)", not_applicable=NO_IDENTITY)
def unlocked_refused(ctx: Context) -> Outcome:
    """A device whose verified-boot state is SELF_SIGNED / bootloader unlocked must be refused: BOOTLOADER_UNLOCKED."""
    return _flagged(ctx, "BOOTLOADER_UNLOCKED", bootloader_unlocked=True)


@check("ATT-003", "Tampered (not genuine) app is refused", systems=DEVICE_SYSTEMS, severity="critical",
       reference=f"{REF_ATT} (app signing digest)", not_applicable=NO_IDENTITY)
def tampered_app_refused(ctx: Context) -> Outcome:
    """A repackaged player app signed by someone else must be refused: APP_NOT_GENUINE."""
    return _flagged(ctx, "APP_NOT_GENUINE", tampered_app=True)


@check("ATT-004", "Device certificate not chained to the trusted roots is refused", systems=DEVICE_SYSTEMS,
       severity="critical", reference=f"{REF_ATT}; certificate chain device <- model <- root",
       not_applicable=NO_IDENTITY)
def rogue_chain_refused(ctx: Context) -> Outcome:
    """A device provisioned from a throwaway root nobody trusts must be refused: CERTIFICATE_INVALID."""
    from license_server.clock import wall_clock_now
    from license_server.keygen import init_keys
    from license_server.keyring import load_keyring

    rogue_dir = ctx.scratch("rogue-keys")
    init_keys(rogue_dir, force=True, now=wall_clock_now())
    if ctx.keyring.playready is not None and ctx.keyring.playready.server_public_key:
        # a rogue client still encrypts its client data to the target's published PlayReady server key
        from license_server.crypto import ecc

        (rogue_dir / "playready" / "license-server.key.pem").unlink()
        (rogue_dir / "playready" / "license-server-public.pem").write_bytes(
            ecc.public_key_pem(ctx.keyring.playready.server_public_key))
    rogue = load_keyring(rogue_dir)
    device = make_device(ctx, "L1", keyring=rogue)
    client = dialect(ctx)
    cdm = client.cdm(ctx, device, keyring=rogue) if isinstance(client, PlayReadyDialect) else None
    return expect_refusal(ctx, client.acquire(ctx, device, cdm=cdm), device, "CERTIFICATE_INVALID")


@check("ATT-008", "Revoked device is refused", systems=DEVICE_SYSTEMS, severity="critical",
       reference=f"{REF_ATT} (revocation of the device)", needs=("revocation",), not_applicable=NO_IDENTITY)
def revoked_device_refused(ctx: Context) -> Outcome:
    """A device that got a license is revoked by its device id; its next request is refused: DEVICE_REVOKED."""
    device = make_device(ctx, "L1")
    before = dialect(ctx).acquire(ctx, device)
    if not before.granted:
        return Outcome.failed(f"the device was refused before its revocation ({before.code})",
                              before_revocation=before.evidence(device))
    with revoked(ctx, device_id=device.device_id) as how:
        outcome = expect_refusal(ctx, dialect(ctx).acquire(ctx, device), device, "DEVICE_REVOKED")
    outcome.evidence.update(revocation=how, before_revocation=before.evidence())
    return outcome


@check("ATT-009", "Revoked system id (device model) is refused", systems=DEVICE_SYSTEMS, severity="critical",
       reference=f"{REF_ATT} (revocation of the model / system id)", needs=("revocation",),
       not_applicable=NO_IDENTITY)
def revoked_system_id_refused(ctx: Context) -> Outcome:
    """Revoking a model's system id refuses a device of that model that was never revoked itself: DEVICE_REVOKED."""
    device = make_device(ctx, model=TABLET_L1)
    with revoked(ctx, system_id=device.record.system_id) as how:
        outcome = expect_refusal(ctx, dialect(ctx).acquire(ctx, device), device, "DEVICE_REVOKED")
    after = dialect(ctx).acquire(ctx, device)
    outcome.evidence.update(revocation=how, after_unrevoking={"granted": after.granted, "code": after.code})
    if outcome.status == "passed" and not after.granted:
        return Outcome.failed(f"the device stayed refused after its model was un-revoked ({after.code})",
                              **outcome.evidence)
    return outcome


def no_hardware_keys(ctx: Context, attempt: Attempt, device, expected_tracks: list[str] | None) -> Outcome:
    """Passed if no granted key needs hardware (and the tracks are ``expected_tracks`` when given)."""
    evidence = attempt.evidence(device)
    evidence["expected"] = {"keys": f"none at {HARDWARE.name} or above, no UHD1", "tracks": expected_tracks,
                            "platform_verification": "not HARDWARE_VERIFIED"}
    if not attempt.granted:
        if attempt.reply.status == 200:
            return Outcome.failed(f"the server answered a license the software device cannot load "
                                  f"({attempt.device_error}): it was issued for a higher level", **evidence)
        return Outcome.failed(f"the device was refused a streaming license ({attempt.code})", **evidence)
    hardware = [k for k in attempt.keys if Robustness[k["robustness"]] >= HARDWARE or k["track"] == "UHD1"]
    evidence["observed"] = {"tracks": attempt.tracks, "hardware_keys": hardware,
                            "platform_verification": attempt.platform}
    if hardware:
        return Outcome.failed(f"the software device got hardware-level keys: {[k['track'] for k in hardware]}",
                              **evidence)
    if attempt.platform == "HARDWARE_VERIFIED":
        return Outcome.failed("the software device was classified HARDWARE_VERIFIED", **evidence)
    if expected_tracks is not None and attempt.tracks != expected_tracks:
        return Outcome.failed(f"tracks {attempt.tracks}, expected {expected_tracks}", **evidence)
    return Outcome.passed(f"software-level keys only: {', '.join(attempt.tracks)}", **evidence)


@check("ATT-010", "An L3 device presenting L1 claims gets no hardware-level keys", systems=("widevine",),
       severity="critical", reference=f"{REF_ATT} (the level comes from the certificate, not from claims)",
       not_applicable=NO_IDENTITY)
def l3_claiming_l1(ctx: Context) -> Outcome:
    """A software device re-signs a challenge claiming security level L1, OEMCrypto 18 and TEE-sourced evidence;
    the server must still give it software-level keys only."""
    from device_emulator.cdm.widevine import PendingRequest, WidevineCdm
    from license_server.protocols.widevine import codec
    from license_server.protocols.widevine import license_protocol_pb2 as pb

    device = make_device(ctx, "L3")
    cdm = WidevineCdm(device)
    honest = cdm.build_challenge(CONTENT, TEMPORARY, privacy=False)
    request = pb.LicenseRequest.FromString(honest.request_msg)
    client = request.client_id
    for info in client.client_info:
        if info.name == "security_level":
            info.value = "L1"
    client.client_capabilities.oem_crypto_api_version = 18
    client.attestation.source = pb.AttestationEvidence.TRUSTED_ENVIRONMENT
    msg = request.SerializeToString()
    forged = PendingRequest(codec.sign_message(msg, device.tee.sign(msg)), msg, honest.request_id, honest.kind,
                            honest.content_id)
    attempt = dialect(ctx).complete(ctx, device, cdm, forged)
    outcome = no_hardware_keys(ctx, attempt, device, ["AUDIO", "SD"])
    outcome.evidence["forged_claims"] = {"client_info.security_level": "L1", "oem_crypto_api_version": 18,
                                         "attestation.source": "TRUSTED_ENVIRONMENT"}
    return outcome

# ----------------------------------------------------- security levels, outputs

L3_TRACKS = {"widevine": ["AUDIO", "SD"], "playready": ["AUDIO", "SD"],
             "fairplay": ["AUDIO", "HD", "SD"]}  # FairPlay baseline may get HD (with HDCP), never UHD


@check("SEC-001", "A software-only (L3) device gets no hardware-level keys", systems=DEVICE_SYSTEMS,
       severity="critical", reference=ref.cite(ref.POLICY_CFG + " (track rules per security level)",
                                             ref.FAIRPLAY_DOC + ", Business rules (UHD needs main)"),
       not_applicable=NO_LEVELS)
def l3_software_keys_only(ctx: Context) -> Outcome:
    """An L3 device's streaming license holds no key needing hardware robustness and no UHD key: Widevine- and
    PlayReady-style give AUDIO and SD; FairPlay-style (baseline) AUDIO, SD and HD."""
    device = make_device(ctx, "L3")
    return no_hardware_keys(ctx, dialect(ctx).acquire(ctx, device), device, L3_TRACKS[ctx.system])


HD_RULES = {  # track -> (lowest robustness, lowest HDCP) per dialect
    "playready": {"HD": (Robustness.HW_SECURE_CRYPTO, Hdcp.V1), "UHD1": (Robustness.HW_SECURE_ALL, Hdcp.V2_2)},
    "fairplay": {"HD": (Robustness.SW_SECURE_CRYPTO, Hdcp.V1), "UHD1": (Robustness.HW_SECURE_ALL, Hdcp.V2_2)},
}


@implements("SEC-002", "fairplay", "playready")
def hd_uhd_levels_generic(ctx: Context) -> Outcome:
    device = make_device(ctx, "L1")
    attempt = dialect(ctx).acquire(ctx, device)
    evidence = attempt.evidence(device)
    rules = HD_RULES[ctx.system]
    evidence["expected"] = {t: {"robustness_at_least": r.name, "hdcp_at_least": h.name} for t, (r, h) in rules.items()}
    if not attempt.granted:
        return Outcome.failed(f"an L1 device was refused a streaming license ({attempt.code})", **evidence)
    got = {k["track"]: (Robustness[k["robustness"]], Hdcp[k["hdcp"]]) for k in attempt.keys}
    evidence["observed"] = {t: {"robustness": r.name, "hdcp": h.name} for t, (r, h) in got.items()}
    problems = [t for t, (r, h) in rules.items() if t not in got or got[t][0] < r or got[t][1] < h]
    if problems:
        return Outcome.failed(f"keys without the required level/HDCP: {problems}", **evidence)
    return Outcome.passed("HD and UHD keys carry level and HDCP", **evidence)

# --------------------------------------------------------------------- licenses


@check("LIC-001", "A stream-only title gets no persistent license; its temporary license cannot be persisted",
       systems=ALL_SYSTEMS, severity="high", reference=ref.cite(ref.RIGHTS + " (offline rights per title)",
                                                                 ref.EME_SESSION_TYPES))
def stream_only_not_persistent(ctx: Context) -> Outcome:
    """A persistent request for the stream-only title is refused (OFFLINE_NOT_ALLOWED), and its temporary
    license is not persistable (can_persist false / JWK set type temporary)."""
    client = dialect(ctx)
    device = None if ctx.system == "clearkey" else make_device(ctx, "L1")
    outcome = expect_refusal(ctx, client.acquire(ctx, device, STREAM_ONLY, PERSISTENT), device, "OFFLINE_NOT_ALLOWED")
    if outcome.status != "passed":
        return outcome
    stream = client.acquire(ctx, device, STREAM_ONLY, TEMPORARY)
    outcome.evidence["temporary_license"] = stream.evidence()
    if not stream.granted:
        return Outcome.failed(f"the temporary license was refused too ({stream.code})", **outcome.evidence)
    outcome.evidence["temporary_license"]["can_persist"] = stream.policy.get("can_persist")
    if stream.policy.get("can_persist"):
        return Outcome.failed("the temporary license says it may be persisted", **outcome.evidence)
    return outcome


@check("LIC-002", "An L3 device is refused a persistent license", systems=DEVICE_SYSTEMS, severity="high",
       reference=ref.POLICY_CFG + " (persistent licenses need L1 unless the policy says otherwise)",
       not_applicable=NO_LEVELS)
def l3_not_persistent(ctx: Context) -> Outcome:
    """Persistent licenses need L1: an L3 device asking for one gets SECURITY_LEVEL_TOO_LOW."""
    device = make_device(ctx, "L3")
    return expect_refusal(ctx, dialect(ctx).acquire(ctx, device, CONTENT, PERSISTENT), device,
                          "SECURITY_LEVEL_TOO_LOW")
