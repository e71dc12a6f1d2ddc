"""Robustness checks driven by data: ``conformance/vectors/robustness-<dialect>.json``.

Each file names the dialect's endpoint, its native refusal (HTTP status range
and body shape) and cases of bad bodies, each with a category (malformed,
truncated, oversized, random) and, where it is certain, the stable codes
allowed. One generic function per category runs the cases of the dialect
under test. A case passes when the answer is the dialect's native refusal, the
``X-DRM-Error-Code`` is a documented client-error code (one of the case's codes
if it lists any), the body names the same code, and it came within the time
limit. The first case of each category is sent twice: the code must not change.
With admin API access, the server's licenses of the dialect must be the same
(ids, states, update times) before and after the bad bodies: nothing stored changed.
"""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path
from typing import Any

from conformance import references as ref
from conformance.catalog import Context, Outcome, check
from conformance.dialects import CONTENT, TEMPORARY, make_device
from conformance.entitlement import default_headers
from device_emulator import transport
from license_server.errors import ErrorCode

VECTORS = Path(__file__).parent / "vectors"
CATEGORIES = ("malformed", "truncated", "oversized", "random")
TIMEOUT = 10.0
REFERENCE = ref.cite(ref.CONFORMANCE_ROBUSTNESS + " (bad input: a dialect-native error with a stable code, never a "
                     "crash or a hang)", ref.ERROR_CODES)


@cache
def vectors(system: str) -> dict[str, Any]:
    return json.loads((VECTORS / f"robustness-{system}.json").read_text(encoding="utf-8"))


def vector_systems() -> tuple[str, ...]:
    from conformance.catalog import SYSTEMS

    return tuple(s for s in SYSTEMS if (VECTORS / f"robustness-{s}.json").exists())


def valid_challenge(ctx: Context) -> bytes:
    """A valid license request of the dialect under test, as the reference device builds it."""
    if ctx.system == "clearkey":
        from license_server.protocols.clearkey import build_license_request

        return build_license_request([t.kid for t in ctx.keyring.catalog.title(CONTENT).tracks])
    from conformance.dialects import DIALECTS

    device = make_device(ctx, "L1")
    if ctx.system == "widevine":
        from device_emulator.cdm.widevine import WidevineCdm

        return WidevineCdm(device).build_challenge(CONTENT, TEMPORARY, privacy=False).body
    cdm = DIALECTS[ctx.system].cdm(ctx, device)
    return cdm.build_spc(CONTENT).body if ctx.system == "fairplay" else cdm.build_challenge(CONTENT, TEMPORARY).body


def bodies(ctx: Context, case: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The bodies a case describes, each with a label for the evidence."""
    spec = case["body"]
    if "hex" in spec:
        return [(case["id"], bytes.fromhex(spec["hex"]))]
    if "text" in spec:
        return [(case["id"], spec["text"].encode("utf-8"))]
    if "json" in spec:
        return [(case["id"], json.dumps(spec["json"]).encode())]
    if "repeat" in spec:
        unit = bytes.fromhex(spec["repeat"]["hex"]) if "hex" in spec["repeat"] else spec["repeat"]["text"].encode()
        return [(case["id"], unit * spec["repeat"]["count"])]
    if "challenge" in spec:
        cut = spec["challenge"]
        whole = valid_challenge(ctx)
        keep = (int(len(whole) * cut["keep"]) if "keep" in cut else
                len(whole) - cut["drop_tail"] if "drop_tail" in cut else cut["keep_bytes"])
        return [(f"{case['id']} ({keep} of {len(whole)} bytes)", whole[:keep])]
    if "random" in spec:
        r = spec["random"]
        rng = random.Random(r["seed"])
        out = []
        for i in range(r["count"]):
            body = rng.randbytes(rng.randint(r["min"], r["max"]))
            out.append((f"{case['id']} #{i} ({len(body)} bytes, seed {r['seed']})", body))
        return out
    raise ValueError(f"case {case['id']}: unknown body description {sorted(spec)}")


def _status_ok(expected: Any, status: int) -> bool:
    return 400 <= status < 500 if expected == "4xx" else status in expected


def _shape_code(shape: str, body: bytes, status: int, headers: dict[str, str]) -> tuple[str | None, str]:
    """The code the body itself names (or None) and a note on the shape."""
    try:
        if shape == "widevine-error":
            from license_server.protocols.widevine import codec

            return codec.parse_server_reply(body).error_code, "SignedMessage ERROR_RESPONSE"
        if shape == "soap-fault":
            from license_server.protocols.playready import faults

            fault = faults.parse_fault(body)
            if fault is None:
                return None, "not a SOAP Fault"
            if fault.status_code == faults.INTERNAL[0]:
                return None, f"SOAP Fault with {faults.INTERNAL[1]} (a server error, not a refusal)"
            return fault.error_code, f"SOAP Fault, StatusCode 0x{fault.status_code:08X}"
        doc = json.loads(body)
        if shape == "fairplay-json-error":
            return (doc.get("code") if doc.get("status") == status else None), "JSON {status, code, message}"
        if shape == "clearkey-json-error":
            if headers.get("access-control-allow-origin") != "*":
                return None, "JSON error without the CORS header a browser player needs"
            return doc["error"]["code"], "JSON {error: {code, message}} with CORS"
    except Exception as exc:
        return None, f"the body is not the dialect's error shape ({type(exc).__name__})"
    raise ValueError(f"unknown refusal shape {shape}")


def send(ctx: Context, doc: dict[str, Any], case: dict[str, Any], label: str, body: bytes) -> dict[str, Any]:
    """Post one body; return the evidence with a verdict (``ok`` and ``problem``)."""
    endpoint = doc["endpoint"]
    url = ctx.url(endpoint["path"])
    content_type = case.get("content_type", endpoint["content_type"])
    record: dict[str, Any] = {"case": label, "request": {"method": endpoint["method"], "url": url,
                                                         "content_type": content_type, "bytes": len(body)},
                              "expected": {"status": doc["refusal"]["status"], "shape": doc["refusal"]["shape"],
                                           "codes": case.get("codes", "any documented client-error code")}}
    try:
        headers = {**endpoint.get("headers", {}), **default_headers(ctx)}  # a token in strict mode
        reply = transport.post(url, body, content_type=content_type, headers=headers, timeout=TIMEOUT)
    except transport.TransportError as exc:
        record.update(ok=False, problem=f"no answer ({exc}): a hang or a dropped connection")
        return record
    named, shape_note = _shape_code(doc["refusal"]["shape"], reply.body, reply.status, reply.headers)
    code = reply.error_code
    record["response"] = {"status": reply.status, "error_code": code, "body_code": named, "shape": shape_note,
                          "bytes": len(reply.body)}
    known = {c.value: c for c in ErrorCode}
    problem = None
    if not _status_ok(doc["refusal"]["status"], reply.status):
        problem = f"HTTP {reply.status}"
    elif code not in known:
        problem = f"X-DRM-Error-Code {code!r} is not a documented stable code"
    elif known[code].status >= 500:
        problem = f"{code} is a server-error code"
    elif case.get("codes") and code not in case["codes"]:
        problem = f"{code} is not one of {case['codes']}"
    elif named != code:
        problem = f"the body does not name {code} ({shape_note})"
    record.update(ok=problem is None, problem=problem)
    return record


def stored_licenses(ctx: Context) -> list | None:
    """A fingerprint of what the server stores for this dialect (admin API), or None without access."""
    from conformance.target import admin_get

    if not ctx.capabilities.get("admin"):
        return None
    status, doc = admin_get(ctx, f"/admin/licenses?system={ctx.system}&limit=1000")
    if status != 200 or not isinstance(doc, dict):
        return None
    return sorted((lic["license_id"], lic["stored_state"], lic["updated_at"]) for lic in doc.get("licenses", []))


def run_category(ctx: Context, category: str) -> Outcome:
    doc = vectors(ctx.system)
    cases = [c for c in doc["cases"] if c["category"] == category]
    if not cases:
        return Outcome.not_applicable(f"robustness-{ctx.system}.json has no {category} case")
    built = [(case, label, body) for case in cases for label, body in bodies(ctx, case)]
    before = stored_licenses(ctx)
    records = [send(ctx, doc, case, label, body) for case, label, body in built]
    first_case = cases[0]
    label, body = bodies(ctx, first_case)[0]
    again = send(ctx, doc, first_case, f"{label} (sent again)", body)
    if again.get("response", {}).get("error_code") != records[0].get("response", {}).get("error_code"):
        again.update(ok=False, problem="the same body got another code the second time (not stable)")
    records.append(again)
    after = stored_licenses(ctx)
    evidence = {"vectors": f"conformance/vectors/robustness-{ctx.system}.json", "refusal": doc["refusal"],
                "cases": records, "store_unchanged": "not checked: no admin API access" if before is None
                else before == after}
    bad = [f"{r['case']}: {r['problem']}" for r in records if not r["ok"]]
    if before is not None and before != after:
        bad.insert(0, f"the server's stored {ctx.system} licenses changed ({len(before)} -> {len(after or [])})")
    if bad:
        return Outcome.failed("; ".join(bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""), **evidence)
    codes = sorted({r["response"]["error_code"] for r in records})
    return Outcome.passed(f"{len(records)} bodies refused natively with {', '.join(codes)}", **evidence)


def _register(number: int, category: str, title: str, description: str) -> None:
    def run(ctx: Context) -> Outcome:
        return run_category(ctx, category)

    run.__name__ = f"robustness_{category}"
    check(f"ROB-00{number}", title, systems=vector_systems(), severity="medium", reference=REFERENCE,
          description=description)(run)


_register(1, "malformed", "Malformed bodies get the dialect's refusal with a stable code, never a crash",
          "Empty, one-byte, text, wrong-shape and hostile bodies from the vectors file.")
_register(2, "truncated", "Truncated challenges get the dialect's refusal with a stable code",
          "A valid challenge built by the reference device, cut short at several places.")
_register(3, "oversized", "Oversized bodies are refused (CHALLENGE_TOO_LARGE) without a crash or a hang",
          "Bodies over the endpoint's size limit (2 MiB, and dialect-specific limits).")
_register(4, "random", "Random bodies get the dialect's refusal with a stable code",
          "Seeded random bytes (the same on every run) of 1 to 4096 bytes.")
