"""Widevine-style conformance checks of the offline lifecycle, destruction and robustness."""

from __future__ import annotations

import random

from license_server.core.model import LicenseKind
from device_emulator import lifecycle
from device_emulator.acquire import acquire
from device_emulator.cdm.widevine import WidevineCdm
from device_emulator.device import Device
from conformance.catalog import Context, Outcome, check
from conformance.widevine_support import CONTENT, LICENSE_PATH, make_device, post_raw

WV = ("widevine",)
PERSISTENT = LicenseKind.PERSISTENT
OVERSIZED = 2 * 1024 * 1024


def _download(ctx: Context, device: Device, rental: int, playback: int):
    query = f"?cfg=(rental:{rental},playback:{playback})"
    result = acquire(device, server=ctx.server, content_id=CONTENT, kind=PERSISTENT, url=LICENSE_PATH + query,
                     privacy=False)
    evidence = {"request": {"method": "POST", "url": ctx.url(LICENSE_PATH + query), "content_id": CONTENT,
                            "license_type": "persistent"},
                "acquire": {"status": result.status, "error": result.error,
                            "rental_duration": result.policy.get("rental_duration"),
                            "playback_duration": result.policy.get("playback_duration")}}
    problem = None
    if result.status != "granted":
        problem = f"the persistent license was refused ({result.error})"
    elif (result.policy.get("rental_duration"), result.policy.get("playback_duration")) != (rental, playback):
        problem = "the server ignored the cfg= override of the storage/playback windows"
    return result, evidence, problem


def _advance(device: Device, seconds: int) -> None:
    device.record.clock_offset += seconds
    device.save()


def _play(device: Device, evidence: dict, label: str) -> lifecycle.PlaybackDecision:
    decision = lifecycle.play(device, CONTENT)
    evidence.setdefault("plays", []).append({"when": label, "decision": decision.decision,
                                             "reason": decision.reason})
    return decision

# -------------------------------------------------------------- offline expiry


@check("OFF-001", "Storage window: a never-played download expires when the storage window ends", systems=WV,
       severity="high", reference="DESIGN §5 Policy (rental/storage window)", needs=("test-clock",))
def storage_window(ctx: Context) -> Outcome:
    """Download with a 1 h storage window, never play, move the device clock past it: STORAGE_WINDOW_EXPIRED."""
    device = make_device(ctx, "L1")
    _, evidence, problem = _download(ctx, device, 3600, 600)
    if problem:
        return Outcome.failed(problem, **evidence)
    _advance(device, 3601)
    decision = _play(device, evidence, "device clock +3601 s, never played")
    evidence["expected"] = "refused STORAGE_WINDOW_EXPIRED"
    if decision.decision == "refused" and decision.reason == "STORAGE_WINDOW_EXPIRED":
        return Outcome.passed("refused after the storage window", **evidence)
    return Outcome.failed(f"observed {decision.decision} {decision.reason}", **evidence)


@check("OFF-002", "Playback window runs from the first play, not from the download", systems=WV,
       severity="high", reference="DESIGN §5 Policy (playback window from first play)", needs=("test-clock",))
def playback_window(ctx: Context) -> Outcome:
    """Storage 1 d, playback 10 min: first play 1000 s after download works; 601 s after that: PLAYBACK_WINDOW_EXPIRED."""
    device = make_device(ctx, "L1")
    _, evidence, problem = _download(ctx, device, 86400, 600)
    if problem:
        return Outcome.failed(problem, **evidence)
    evidence["expected"] = "play at +1000 s, refused PLAYBACK_WINDOW_EXPIRED at +1601 s"
    _advance(device, 1000)
    first = _play(device, evidence, "+1000 s (first play)")
    if first.decision != "play":
        return Outcome.failed(f"the first play was refused ({first.reason}): the playback window seems to run "
                              "from the download", **evidence)
    _advance(device, 601)
    later = _play(device, evidence, "+1601 s (601 s after the first play)")
    if later.decision == "refused" and later.reason == "PLAYBACK_WINDOW_EXPIRED":
        return Outcome.passed("the playback window started at the first play", **evidence)
    return Outcome.failed(f"observed {later.decision} {later.reason}", **evidence)

# ------------------------------------------------------------------ destruction


@check("DES-001", "Removal is immediate, even offline", systems=WV, severity="high",
       reference="DESIGN §5 (secure removal)")
def removal_immediate(ctx: Context) -> Outcome:
    """After ``remove`` without network the stored license plays no more: LICENSE_RELEASED."""
    device = make_device(ctx, "L1")
    result = acquire(device, server=ctx.server, content_id=CONTENT, kind=PERSISTENT, privacy=False)
    evidence = {"acquire": {"status": result.status, "error": result.error, "key_set_id": result.key_set_id},
                "expected": "play before removal, refused LICENSE_RELEASED right after"}
    if result.status != "granted":
        return Outcome.failed("the persistent license was refused", **evidence)
    if _play(device, evidence, "before removal").decision != "play":
        return Outcome.failed("the fresh download does not play", **evidence)
    lifecycle.remove(device, CONTENT, server=None)
    after = _play(device, evidence, "right after removal (offline)")
    if after.decision == "refused" and after.reason == "LICENSE_RELEASED":
        return Outcome.passed("removed licenses stop playing at once", **evidence)
    return Outcome.failed(f"observed {after.decision} {after.reason}", **evidence)


@check("DES-002", "Release is acknowledged by the server", systems=WV, severity="medium",
       reference="DESIGN §3 Widevine-style (RELEASE request, signed acknowledgement)")
def release_acknowledged(ctx: Context) -> Outcome:
    """The device's signed release reaches the server and comes back with an acknowledgement the device verifies."""
    device = make_device(ctx, "L1")
    result = acquire(device, server=ctx.server, content_id=CONTENT, kind=PERSISTENT, privacy=False)
    evidence = {"acquire": {"status": result.status, "error": result.error, "key_set_id": result.key_set_id},
                "expected": {"released": [result.key_set_id], "release_pending": []}}
    if result.status != "granted":
        return Outcome.failed("the persistent license was refused", **evidence)
    report = lifecycle.remove(device, CONTENT, server=ctx.server)
    evidence["observed"] = report.as_dict() if report else None
    if report and report.released == [result.key_set_id] and not report.release_pending:
        return Outcome.passed("release acknowledged and verified by the device", **evidence)
    return Outcome.failed("the release was not acknowledged", **evidence)

# ------------------------------------------------------------------- robustness


def _expect_4xx(ctx: Context, body: bytes, what: str) -> Outcome:
    reply, evidence = post_raw(ctx, body, what)
    evidence["expected"] = "4xx with an X-DRM-Error-Code header"
    if 400 <= reply.status < 500 and reply.error_code:
        return Outcome.passed(f"{reply.status} {reply.error_code}", **evidence)
    return Outcome.failed(f"answered {reply.status} {reply.error_code or '(no error code)'}", **evidence)


def _all(outcomes: list[Outcome]) -> Outcome:
    evidence = {f"case {i + 1}": o.evidence for i, o in enumerate(outcomes)}
    failed = [o.reason for o in outcomes if o.status != "passed"]
    if failed:
        return Outcome.failed("; ".join(failed), **evidence)
    return Outcome.passed(", ".join(o.reason for o in outcomes), **evidence)


@check("ROB-001", "Malformed bodies get a 4xx with a stable code", systems=WV, severity="medium",
       reference="DESIGN §7 Quality bars (bad input: dialect-native 4xx, never 5xx)")
def malformed_bodies(ctx: Context) -> Outcome:
    """Empty body, a single byte, text, and a protobuf of the wrong type."""
    cases = [(b"", "empty"), (b"\x00", "one zero byte"), (b"<xml>not a challenge</xml>", "text"),
             (b"\x08\x05\x12\x03abc", "protobuf of another shape")]
    return _all([_expect_4xx(ctx, body, what) for body, what in cases])


@check("ROB-002", "Truncated challenges get a 4xx with a stable code", systems=WV, severity="medium",
       reference="DESIGN §7 Quality bars")
def truncated_bodies(ctx: Context) -> Outcome:
    """A valid signed challenge cut at half its length and 3 bytes short of its end."""
    body = WidevineCdm(make_device(ctx, "L1")).build_challenge(CONTENT, LicenseKind.TEMPORARY, privacy=False).body
    return _all([_expect_4xx(ctx, body[:cut], f"challenge truncated to {cut} of {len(body)} bytes")
                 for cut in (len(body) // 2, len(body) - 3)])


@check("ROB-003", "Oversized bodies get a 4xx with a stable code", systems=WV, severity="medium",
       reference="DESIGN §7 Quality bars (bounded request size)")
def oversized_body(ctx: Context) -> Outcome:
    """A 2 MiB body must be refused (413 or another 4xx) without a 5xx or a hang."""
    return _expect_4xx(ctx, b"\x0a" * OVERSIZED, f"{OVERSIZED} bytes")


@check("ROB-004", "Random bodies get a 4xx with a stable code", systems=WV, severity="medium",
       reference="DESIGN §7 Quality bars")
def random_bodies(ctx: Context) -> Outcome:
    """Eight random bodies (seeded, reproducible) of 1 to 4096 bytes."""
    rng = random.Random(6)  # a fixed seed: the same bodies on every run
    cases = [rng.randbytes(rng.randint(1, 4096)) for _ in range(8)]
    return _all([_expect_4xx(ctx, body, f"random bytes #{i} ({len(body)} bytes, seed 6)")
                 for i, body in enumerate(cases)])
