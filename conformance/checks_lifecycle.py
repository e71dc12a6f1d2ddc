"""Server-side lifecycle checks: renewal rules and what the server does with a release.

Renewal checks move the *server* clock (``needs: test-clock``) together with
the device clock and put the server clock back afterwards.
"""

from __future__ import annotations

import json
from typing import Any

from conformance import references as ref
from conformance.catalog import Context, Outcome, check, implements
from conformance.checks_device import CONTENT, download, lifecycle
from conformance.dialects import DIALECTS, PERSISTENT, make_device
from conformance.entitlement import TOKEN_HEADER, default_headers, license_request
from conformance.target import admin_get, server_clock
from license_server.core.model import LicenseKind

WV = ("widevine",)
RENEWAL_POLICY = {"license": 600, "renew": True, "renewal_recovery": 300}
NO_RENEWAL = {"fairplay": "FairPlay-style offline keys have no lease, so no renewal: a new key is acquired instead",
              "playready": "PlayReady-style licenses have no renewal exchange: a new license is acquired instead"}
REF_RENEWAL = ref.cite(ref.WIDEVINE + ": a renewal applies only with a higher license.id.version; renewal delay, "
                       "retry and recovery durations", ref.OFFLINE)

# ---------------------------------------------------------------- renewal rules


@check("OFF-005", "A renewal restarts the license clock", systems=WV, severity="high", reference=REF_RENEWAL,
       needs=("test-clock",), not_applicable=NO_RENEWAL)
def renewal_restarts_clock(ctx: Context) -> Outcome:
    """License duration 10 min, renewable: renew at +500 s (version 2, new license start), then play at +1000 s,
    past the first deadline: play."""
    adapter = lifecycle(ctx)
    device = adapter.provision()
    _, evidence, problem = download(ctx, device, policy=RENEWAL_POLICY)
    if problem:
        return Outcome.failed(problem, **evidence)
    evidence["expected"] = "renewal applied with version 2 at +500 s; play at +1000 s"
    with server_clock(ctx) as clock:
        renew_at = clock.advance(500, device)
        renewed = adapter.renew(device, CONTENT)
        evidence["renewal"] = {"server_time": renew_at, **renewed}
        if not renewed.get("applied") or renewed.get("version") != 2:
            return Outcome.failed(f"the renewal at +500 s was not applied ({renewed.get('error_code') or renewed})",
                                  **evidence)
        if abs(int(renewed.get("license_start", 0)) - renew_at) > 60:
            return Outcome.failed("the renewed license does not start at the renewal time", **evidence)
        clock.advance(500, device)
        decision = adapter.play(device, CONTENT)
    evidence["observed"] = {"play_at_plus_1000s": decision.as_dict()}
    if decision.decision != "play":
        return Outcome.failed(f"after the renewal playback at +1000 s was refused ({decision.reason})", **evidence)
    return Outcome.passed("the renewal restarted the license clock", **evidence)


@check("OFF-006", "A renewal after the recovery window is refused", systems=WV, severity="high",
       reference=REF_RENEWAL, needs=("test-clock",), not_applicable=NO_RENEWAL)
def renewal_after_recovery_refused(ctx: Context) -> Outcome:
    """License 10 min, recovery 5 min: a renewal at +700 s (expired, inside recovery) is accepted; after that
    license's deadline plus recovery (+1700 s) a renewal is refused with LICENSE_EXPIRED."""
    adapter = lifecycle(ctx)
    device = adapter.provision()
    _, evidence, problem = download(ctx, device, policy=RENEWAL_POLICY)
    if problem:
        return Outcome.failed(problem, **evidence)
    evidence["expected"] = "renewal accepted at +700 s; refused LICENSE_EXPIRED at +1700 s"
    with server_clock(ctx) as clock:
        clock.advance(700, device)
        inside = adapter.renew(device, CONTENT)
        evidence["renewal_inside_recovery"] = inside
        clock.advance(1000, device)
        after = adapter.renew(device, CONTENT)
        evidence["renewal_after_recovery"] = after
    if not inside.get("applied"):
        return Outcome.failed(f"a renewal inside the recovery window was refused ({inside.get('error_code')})",
                              **evidence)
    if after.get("applied") or after.get("error_code") != "LICENSE_EXPIRED":
        return Outcome.failed(f"a renewal after the recovery window gave {after}", **evidence)
    return Outcome.passed("renewal refused once the recovery window had passed", **evidence)

# ------------------------------------------------------------------ release


@check("DES-002", "Release is acknowledged by the server", systems=WV, severity="medium",
       reference=ref.cite(ref.WIDEVINE + " (RELEASE)", ref.FAIRPLAY + " (secure invalidation)",
                          ref.PLAYREADY_SECURE_DELETE, ref.EME_REMOVE, ref.DESTRUCTION))
def release_acknowledged(ctx: Context) -> Outcome:
    """The device's signed record of destroying a persistent license reaches the server and comes back
    acknowledged in the dialect's own form."""
    adapter = lifecycle(ctx)
    device = adapter.provision()
    result, evidence, problem = download(ctx, device)
    if problem:
        return Outcome.failed(problem, **evidence)
    report = adapter.remove(device, CONTENT, online=True)
    evidence.update(expected={"released": [result.key_set_id], "release_pending": []}, observed=report)
    if report.get("released") == [result.key_set_id] and not report.get("release_pending"):
        return Outcome.passed("release acknowledged and verified by the device", **evidence)
    return Outcome.failed("the release was not acknowledged", **evidence)


def _persistent(ctx: Context) -> tuple[Any, Any, dict]:
    from device_emulator.acquire import acquire

    device = make_device(ctx, "L1")
    result = acquire(device, server=ctx.server, content_id=CONTENT, kind=PERSISTENT, system=ctx.system,
                     headers=default_headers(ctx))
    evidence = {"acquire": {"status": result.status, "error": result.error, "license_id": result.license_id}}
    return device, result, evidence


@implements("DES-002", "fairplay")
def release_acknowledged_fairplay(ctx: Context) -> Outcome:
    from device_emulator.acquire_fairplay import report_deleted
    from device_emulator.errors import CdmError

    device, result, evidence = _persistent(ctx)
    if result.status != "granted":
        return Outcome.failed("the persistent key was refused", **evidence)
    evidence["expected"] = {"released": [result.license_id], "not_found": []}
    try:
        ack = report_deleted(device, server=ctx.server, license_ids=[result.license_id], content_id=CONTENT,
                             deleted_at=device.now(), headers=default_headers(ctx))
    except CdmError as exc:
        evidence["observed"] = {"error_code": exc.code, "message": exc.message}
        return Outcome.failed(f"the secure invalidation was refused ({exc.code})", **evidence)
    evidence["observed"] = {"released": list(ack.released), "not_found": list(ack.not_found)}
    if list(ack.released) == [result.license_id] and not ack.not_found:
        return Outcome.passed("secure invalidation acknowledged", **evidence)
    return Outcome.failed("the acknowledgement does not release the license", **evidence)


def _secure_delete(ctx: Context, device, license_id: str, kids: tuple[bytes, ...]) -> dict:
    from device_emulator.acquire_playready import secure_delete
    from device_emulator.errors import CdmError

    try:
        answer = secure_delete(device, server=ctx.server, license_id=license_id, kids=kids,
                               headers=default_headers(ctx))
        return {"status": answer.status}
    except CdmError as exc:
        return {"error_code": exc.code, "message": exc.message}


@implements("DES-002", "playready")
def release_acknowledged_playready(ctx: Context) -> Outcome:
    device, result, evidence = _persistent(ctx)
    if result.status != "granted":
        return Outcome.failed("the persistent license was refused", **evidence)
    kids = tuple(bytes.fromhex(k["kid"]) for k in result.keys)
    evidence["expected"] = {"secure_delete": "released"}
    evidence["observed"] = {"secure_delete": _secure_delete(ctx, device, result.license_id, kids)}
    if evidence["observed"]["secure_delete"].get("status") == "released":
        return Outcome.passed("Secure Delete acknowledged: released", **evidence)
    return Outcome.failed("the Secure Delete report was not acknowledged as released", **evidence)


def _clearkey_release(ctx: Context) -> tuple[list[dict], list[str]]:
    from license_server.protocols.clearkey import b64url_encode

    kids = [b64url_encode(t.kid) for t in ctx.keyring.catalog.title(CONTENT).tracks]
    exchanges = []
    for attempt in ("first", "again"):
        body = json.dumps({"kids": kids}).encode()
        reply = DIALECTS["clearkey"].post(ctx, body)
        try:
            answer = json.loads(reply.body)
        except ValueError:
            answer = None
        exchanges.append({"attempt": attempt, "request": {"method": "POST", "url": ctx.url("/clearkey/license"),
                          "body": {"kids": kids}}, "response": {"status": reply.status,
                          "error_code": reply.error_code, "body": answer}})
    return exchanges, kids


@implements("DES-002", "clearkey")
def release_acknowledged_clearkey(ctx: Context) -> Outcome:
    exchanges, kids = _clearkey_release(ctx)
    first = exchanges[0]["response"]
    evidence = {"exchange": exchanges[0], "expected": {"status": 200, "kids": kids}}
    if first["status"] == 200 and isinstance(first["body"], dict) and first["body"].get("kids") == kids:
        return Outcome.passed("the release of every key id was acknowledged", **evidence)
    return Outcome.failed(f"release answered {first['status']} {first['error_code']}", **evidence)


@check("DES-006", "The server marks a released license released: a second release is acknowledged again, "
                  "a renewal is refused", systems=WV, severity="high",
       description="The device's release is acknowledged; the same release again is acknowledged again "
                   "(idempotent); a renewal after it is refused with LICENSE_RELEASED (Widevine); PlayReady Secure "
                   "Delete twice answers released, then already-released; with admin API access the server's own "
                   "record (GET /admin/licenses/{id}) must say released.",
       reference=ref.cite(ref.RIGHTS + " (a release frees the download slot)",
                          "docs/admin-api.md (released is terminal)"))
def server_marks_released(ctx: Context) -> Outcome:
    """A renewable persistent license: RELEASE is acknowledged, the same RELEASE again is acknowledged
    (idempotent), and a RENEWAL of it afterwards is refused with LICENSE_RELEASED."""
    from device_emulator.cdm.widevine import WidevineCdm
    from device_emulator.errors import CdmError

    device = make_device(ctx, "L1")
    cdm = WidevineCdm(device)
    dialect = DIALECTS["widevine"]
    query, token = license_request(ctx, renew=True)
    headers = {TOKEN_HEADER: token} if token else {}  # the same account must renew (strict mode)
    pending = cdm.build_challenge(CONTENT, LicenseKind.PERSISTENT, privacy=False)
    reply = dialect.post(ctx, pending.body, query=query, headers=headers)
    evidence: dict[str, Any] = {"license_request": {"url": dialect.url(ctx, query), "status": reply.status,
                                                    "error_code": reply.error_code}}
    try:
        loaded = cdm.process_license(pending, reply.body)
    except CdmError as exc:
        return Outcome.failed(f"the renewable persistent license was refused ({exc.code})", **evidence)
    release = cdm.build_release(loaded)
    renewal = cdm.build_renewal(loaded, seconds_since_started=0)
    verifier = device.tee.seal_server_mac(loaded.handle)
    device.tee.close(loaded.handle)
    steps = []
    for label, body in (("release", release), ("release again", release), ("renewal after release", renewal)):
        answer = dialect.post(ctx, body, headers=headers)
        acknowledged = answer.status == 200 and _verified(cdm, verifier, loaded.license_id, answer.body)
        steps.append({"step": label, "status": answer.status, "error_code": answer.error_code,
                      "verified_acknowledgement": acknowledged})
    evidence.update(steps=steps, expected=["200 verified acknowledgement", "200 verified acknowledgement",
                                           "403 LICENSE_RELEASED"])
    if not (steps[0]["verified_acknowledgement"] and steps[1]["verified_acknowledgement"]):
        return Outcome.failed("the release (or the repeated release) was not acknowledged", **evidence)
    if (steps[2]["status"], steps[2]["error_code"]) != (403, "LICENSE_RELEASED"):
        return Outcome.failed(f"a renewal after the release answered {steps[2]['status']} {steps[2]['error_code']}",
                              **evidence)
    return _still_released(ctx, loaded.license_id, evidence, Outcome.passed("released licenses stay released",
                                                                            **evidence))


def server_view(ctx: Context, license_id: str | None) -> dict[str, Any] | None:
    """The server's own record of a license (``GET /admin/licenses/{id}``), when the admin API is available."""
    if not ctx.capabilities.get("admin") or not license_id:
        return None
    status, doc = admin_get(ctx, f"/admin/licenses/{license_id}")
    doc = doc if isinstance(doc, dict) else {}
    return {"url": ctx.url(f"/admin/licenses/{license_id}"), "status": status, "state": doc.get("state"),
            "released_at": doc.get("released_at")}


def _still_released(ctx: Context, license_id: str | None, evidence: dict, outcome: Outcome) -> Outcome:
    """Fail a passing outcome if the admin API shows the license in another state than released."""
    view = server_view(ctx, license_id)
    if view is None:
        outcome.evidence["server_view"] = "not checked: no admin API access"
        return outcome
    outcome.evidence["server_view"] = view
    if outcome.status == "passed" and view["state"] != "released":
        return Outcome.failed(f"the server's own view says the license is {view['state']!r}, not released",
                              **outcome.evidence)
    return outcome


def _verified(cdm, verifier: bytes, license_id: str, body: bytes) -> bool:
    from device_emulator.errors import CdmError

    try:
        return cdm.release_acknowledged(verifier, license_id, body)
    except CdmError:
        return False


@implements("DES-006", "playready")
def server_marks_released_playready(ctx: Context) -> Outcome:
    device, result, evidence = _persistent(ctx)
    if result.status != "granted":
        return Outcome.failed("the persistent license was refused", **evidence)
    kids = tuple(bytes.fromhex(k["kid"]) for k in result.keys)
    first = _secure_delete(ctx, device, result.license_id, kids)
    again = _secure_delete(ctx, device, result.license_id, kids)
    evidence.update(secure_delete=[first, again], expected=["released", "already-released"])
    if (first.get("status"), again.get("status")) == ("released", "already-released"):
        return _still_released(ctx, result.license_id, evidence,
                               Outcome.passed("the server remembers the release", **evidence))
    return Outcome.failed(f"Secure Delete twice answered {first} then {again}", **evidence)


@implements("DES-006", "clearkey")
def server_marks_released_clearkey(ctx: Context) -> Outcome:
    exchanges, kids = _clearkey_release(ctx)
    evidence = {"exchanges": exchanges, "expected": "both releases acknowledged with every key id"}
    if all(e["response"]["status"] == 200 and (e["response"]["body"] or {}).get("kids") == kids for e in exchanges):
        return Outcome.passed("a repeated release is acknowledged again", **evidence)
    return Outcome.failed("a repeated release was not acknowledged", **evidence)
