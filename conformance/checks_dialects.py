"""FairPlay- and PlayReady-style implementations of checks that work on each dialect's own messages.

Replays, challenges altered after signing, evidence from another request,
software devices claiming hardware, licenses copied to another device and
licenses altered in transit. The altered messages are built the way an
attacker on the device or the network would: from real challenges and answers.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import struct
from typing import Any

from conformance import checks_attestation, checks_lifecycle, checks_widevine  # noqa: F401  (registered first)
from conformance.catalog import Context, Outcome, implements
from conformance.checks_attestation import no_hardware_keys
from conformance.dialects import CONTENT, DIALECTS, PERSISTENT, TEMPORARY, make_device
from conformance.entitlement import default_headers
from device_emulator.errors import CdmError
from device_emulator.license_store import LicenseStore
from license_server import crypto
from license_server.core.model import Hdcp

FP, PR = DIALECTS["fairplay"], DIALECTS["playready"]


def _expect_code(ctx: Context, reply, code: str, evidence: dict, ok: str) -> Outcome:
    status = DIALECTS[ctx.system].refusal_status(code)
    evidence["expected"] = {"status": status, "error_code": code}
    evidence["observed"] = {"status": reply.status, "error_code": reply.error_code}
    if (reply.status, reply.error_code) == (status, code):
        return Outcome.passed(ok, **evidence)
    return Outcome.failed(f"answered {reply.status} {reply.error_code}; expected {status} {code}", **evidence)


def _wire(ctx: Context, reply, what: str, sent: int) -> dict:
    return {"request": {"method": "POST", "url": DIALECTS[ctx.system].url(ctx), "bytes": sent, "body": what},
            "response": {"status": reply.status, "error_code": reply.error_code, "bytes": len(reply.body)}}

# ---------------------------------------------------------------------- replay


@implements("ATT-005", "fairplay", "playready")
def replayed_challenge(ctx: Context) -> Outcome:
    device = make_device(ctx, "L1")
    client = DIALECTS[ctx.system]
    cdm = client.cdm(ctx, device)
    body = cdm.build_spc(CONTENT).body if ctx.system == "fairplay" else cdm.build_challenge(CONTENT, TEMPORARY).body
    first, second = client.post(ctx, body), client.post(ctx, body)
    evidence: dict[str, Any] = {"first": _wire(ctx, first, "fresh signed challenge", len(body)),
                "second": _wire(ctx, second, "the same challenge again", len(body))}
    if first.status != 200:
        evidence["expected"] = "first 200"
        return Outcome.failed(f"the fresh challenge was not granted ({first.status} {first.error_code})", **evidence)
    return _expect_code(ctx, second, "REPLAYED_CHALLENGE", evidence, "replay refused")

# -------------------------------------------------------- modified after signing


@implements("ATT-006", "fairplay")
def modified_spc(ctx: Context) -> Outcome:
    """Raise the HDCP Type 1 capability inside the encrypted SPC payload after the device signed it."""
    from license_server.crypto import fairplay as fpcrypto
    from license_server.protocols.fairplay import fields, spc, tllv

    device = make_device(ctx, "L1", hdcp=Hdcp.V1)
    body = FP.cdm(ctx, device).build_spc(CONTENT).body
    ring = ctx.keyring
    spc_key, plain = spc.open_container(body, app_certificate=ring.fairplay_certificate,
                                        app_key_pem=ring.fairplay_key_pem)
    block = next(b for b in tllv.decode(plain) if b.tag == tllv.Tag.CAPABILITIES)
    caps = fields.Capabilities.decode(block.value)
    raised = fields.Capabilities(caps.flags | fields.Capability.HDCP_TYPE1, caps.emu).encode()
    start = block.offset + 16  # tag 8 | block length 4 | value length 4
    altered = plain[:start] + raised + plain[start + len(raised):]
    iv = body[8:24]
    head = len(body) - len(plain)
    forged = body[:head] + fpcrypto.cbc_encrypt_raw(spc_key, iv, altered)
    reply = FP.post(ctx, forged)
    evidence = _wire(ctx, reply, "signed SPC whose capabilities gained HDCP Type 1 afterwards", len(forged))
    return _expect_code(ctx, reply, "SIGNATURE_INVALID", evidence, "altered SPC refused")


@implements("ATT-006", "playready")
def modified_la(ctx: Context) -> Outcome:
    """Raise MaxHDCP inside the encrypted client data after signing, re-encrypt it and recompute the LA
    digest (as one holding the server key could): the device signature over SignedInfo no longer verifies."""
    from license_server import crypto
    from license_server.crypto import ecc, elgamal

    device = make_device(ctx, "L1", hdcp=Hdcp.V1)
    body = PR.cdm(ctx, device).build_challenge(CONTENT, TEMPORARY).body
    values = re.findall(rb"<CipherValue>([^<]+)</CipherValue>", body)
    if len(values) != 2:
        raise RuntimeError("the PlayReady challenge does not have the expected EncryptedData layout")
    point = elgamal.decrypt(ecc.private_scalar(ctx.keyring.playready.server_key_pem), base64.b64decode(values[0]))
    cipher = base64.b64decode(values[1])
    plain = crypto.aes_cbc_decrypt(point[16:32], cipher[:16], cipher[16:])
    raised = plain.replace(b"<MaxHDCP>V1</MaxHDCP>", b"<MaxHDCP>V2_2</MaxHDCP>")
    recipher = cipher[:16] + crypto.aes_cbc_encrypt(point[16:32], cipher[:16], raised)
    altered = body.replace(values[1], base64.b64encode(recipher))
    la = re.search(rb"<LA .*</LA>", altered, re.DOTALL)
    digest = re.search(rb"<DigestValue>([^<]+)</DigestValue>", altered)
    if raised == plain or la is None or digest is None:
        raise RuntimeError("the PlayReady challenge does not have the expected LA/MaxHDCP/DigestValue layout")
    forged = altered.replace(digest.group(1), base64.b64encode(hashlib.sha256(la.group(0)).digest()))
    reply = PR.post(ctx, forged)
    evidence = _wire(ctx, reply, "signed LA whose encrypted MaxHDCP was raised afterwards (digest recomputed)",
                     len(forged))
    return _expect_code(ctx, reply, "SIGNATURE_INVALID", evidence, "altered challenge refused")

# ---------------------------------------------- evidence from another request


def _fairplay_cdm(**overrides):
    from device_emulator.cdm.fairplay import FairPlayCdm

    return type("ForgingFairPlayCdm", (FairPlayCdm,), overrides)


def _playready_cdm(**overrides):
    from device_emulator.cdm.playready import PlayReadyCdm

    return type("ForgingPlayReadyCdm", (PlayReadyCdm,), overrides)


def _foreign_evidence(base):
    def _evidence(self, request_id, now):
        return base._evidence(self, crypto.random_bytes(16), now)  # produced for some other request
    return _evidence


@implements("ATT-007", "fairplay", "playready")
def replayed_evidence(ctx: Context) -> Outcome:
    from device_emulator.cdm.fairplay import FairPlayCdm
    from device_emulator.cdm.playready import PlayReadyCdm

    device = make_device(ctx, "L1")
    if ctx.system == "fairplay":
        cdm = FP.cdm(ctx, device, cls=_fairplay_cdm(_evidence=_foreign_evidence(FairPlayCdm)))
    else:
        cdm = PR.cdm(ctx, device, cls=_playready_cdm(_evidence=_foreign_evidence(PlayReadyCdm)))
    attempt = DIALECTS[ctx.system].acquire(ctx, device, cdm=cdm)
    evidence = attempt.evidence(device)
    evidence["forged"] = "evidence nonce bound to another request id, challenge correctly signed"
    return _expect_code(ctx, attempt.reply, "ATTESTATION_INVALID", evidence, "foreign evidence refused")

# --------------------------------------------------- software device claiming L1


@implements("ATT-010", "fairplay", "playready")
def l3_claiming_l1(ctx: Context) -> Outcome:
    from device_emulator.cdm.fairplay import FairPlayCdm
    from device_emulator.cdm.playready import PlayReadyCdm
    from license_server.protocols.fairplay.fields import SecurityLevel

    def tee_claim(base):
        def _evidence(self, request_id, now):
            return dataclasses.replace(base._evidence(self, request_id, now), from_tee=True)
        return _evidence

    device = make_device(ctx, "L3")
    if ctx.system == "fairplay":
        cls = _fairplay_cdm(_evidence=tee_claim(FairPlayCdm), security_level=property(lambda self: SecurityLevel.MAIN))
        cdm, claims = FP.cdm(ctx, device, cls=cls), {"capabilities": "security level main", "evidence.from_tee": True}
        expected = ["AUDIO", "HD", "SD"]
    else:
        cdm, claims = PR.cdm(ctx, device, cls=_playready_cdm(_evidence=tee_claim(PlayReadyCdm))), \
            {"evidence.from_tee": True}
        expected = ["AUDIO", "SD"]
    outcome = no_hardware_keys(ctx, DIALECTS[ctx.system].acquire(ctx, device, cdm=cdm), device, expected)
    outcome.evidence["forged_claims"] = claims
    return outcome

# ------------------------------------------------------------ copied license


@implements("LIC-003", "fairplay", "playready")
def copied_license(ctx: Context) -> Outcome:
    from device_emulator.acquire import acquire

    owner, thief = make_device(ctx, "L1"), make_device(ctx, "L1")
    result = acquire(owner, server=ctx.server, content_id=CONTENT, kind=PERSISTENT, system=ctx.system,
                     headers=default_headers(ctx))
    evidence = {"acquire": {"status": result.status, "error": result.error, "key_set_id": result.key_set_id}}
    if result.status != "granted" or not result.key_set_id:
        return Outcome.failed("the owner was refused a persistent license", **evidence)
    store = LicenseStore(owner.license_db_path)
    try:
        stored = store.get(result.key_set_id)
    finally:
        store.close()
    if stored is None:
        return Outcome.failed("the owner's device did not keep the persistent license", **evidence)
    evidence["copy"] = {"expected": "LICENSE_NOT_BOUND"}
    try:
        if ctx.system == "fairplay":
            loaded = FP.cdm(ctx, thief).load_stored(stored.wrapped_session_key, stored.license_msg)
        else:
            loaded = PR.cdm(ctx, thief).load_stored(stored)
    except CdmError as exc:
        evidence["copy"]["observed"] = exc.code
        if exc.code == "LICENSE_NOT_BOUND":
            return Outcome.passed("the copy does not load on another device", **evidence)
        return Outcome.failed(f"the copy was refused with {exc.code}, not LICENSE_NOT_BOUND", **evidence)
    evidence["copy"]["observed"] = f"loaded {len(loaded.keys) if hasattr(loaded, 'keys') else 'its'} keys"
    return Outcome.failed("the copied license loaded on another device", **evidence)

# ---------------------------------------------------------- modified in transit


def _tamper_issue_date(data: bytes) -> bytes:
    from license_server.protocols.playready import xmr

    marker = struct.pack(">HH", xmr.MUST_UNDERSTAND, xmr.Obj.ISSUE_DATE)
    at = data.index(marker)
    length = struct.unpack_from(">I", data, at + 4)[0]
    last = at + length - 1  # the least significant byte of the issue date
    return data[:last] + bytes([data[last] ^ 0x80]) + data[last + 1:]


@implements("LIC-004", "fairplay", "playready")
def modified_license(ctx: Context) -> Outcome:
    device = make_device(ctx, "L1")
    client = DIALECTS[ctx.system]
    cdm = client.cdm(ctx, device)
    if ctx.system == "fairplay":
        pending = cdm.build_spc(CONTENT)
        reply = client.post(ctx, pending.body)
        flipped, what = bytearray(reply.body), "one byte of the CKC payload flipped"
        if reply.status == 200:
            flipped[-40] ^= 0x01
        tampered = bytes(flipped)
        load = lambda: cdm.process_ckc(pending, tampered)  # noqa: E731
    else:
        from license_server.protocols.playready import soap

        pending = cdm.build_challenge(CONTENT, TEMPORARY)
        reply = client.post(ctx, pending.body)
        what = "the XMR issue date moved (signature left as it was)"
        tampered = reply.body
        if reply.status == 200:
            data = soap.parse_license_response(reply.body).licenses[0]
            tampered = reply.body.replace(base64.b64encode(data), base64.b64encode(_tamper_issue_date(data)))
        load = lambda: cdm.process_license(pending, tampered)  # noqa: E731
    evidence = _wire(ctx, reply, "fresh signed challenge", len(pending.body))
    evidence["tamper"] = what
    if reply.status != 200:
        return Outcome.failed(f"the challenge was refused ({reply.status} {reply.error_code})", **evidence)
    try:
        loaded = load()
    except CdmError as exc:
        evidence["device"] = {"expected": "LICENSE_TAMPERED", "observed": exc.code}
        if exc.code == "LICENSE_TAMPERED":
            return Outcome.passed("the device rejected the modified license", **evidence)
        return Outcome.failed(f"rejected with {exc.code}, not LICENSE_TAMPERED", **evidence)
    evidence["device"] = {"expected": "LICENSE_TAMPERED", "observed": "loaded"}
    if ctx.system == "fairplay":
        device.tee.close(loaded.handle)
    else:
        cdm.close(loaded)
    return Outcome.failed("the device loaded a license modified in transit", **evidence)


@implements("DES-006", "fairplay")
def server_marks_released_fairplay(ctx: Context) -> Outcome:
    from device_emulator.acquire import acquire
    from device_emulator.acquire_fairplay import report_deleted

    device = make_device(ctx, "L1")
    result = acquire(device, server=ctx.server, content_id=CONTENT, kind=PERSISTENT, system="fairplay",
                     headers=default_headers(ctx))
    evidence = {"acquire": {"status": result.status, "error": result.error, "license_id": result.license_id},
                "expected": [{"released": [result.license_id]}, {"released": [result.license_id]}]}
    if result.status != "granted" or not result.license_id:
        return Outcome.failed("the persistent key was refused", **evidence)
    acks: list[dict[str, Any]] = []
    for _ in range(2):
        try:
            ack = report_deleted(device, server=ctx.server, license_ids=[result.license_id], content_id=CONTENT,
                                 deleted_at=device.now(), headers=default_headers(ctx))
            acks.append({"released": list(ack.released), "not_found": list(ack.not_found)})
        except CdmError as exc:
            acks.append({"error_code": exc.code})
    evidence["observed"] = acks
    if all(a.get("released") == [result.license_id] for a in acks):
        from conformance.checks_lifecycle import _still_released

        return _still_released(ctx, result.license_id, evidence,
                               Outcome.passed("a repeated secure invalidation is acknowledged again", **evidence))
    return Outcome.failed("a repeated secure invalidation was not acknowledged", **evidence)
