"""Entitlement tokens and content-owner rights (``X-DRM-Token``, device caps, single use).

Tokens are minted with the operator's *test* signing keys of the keys
directory (``keys/tokens/signing-keys.jwks.json``), as of the server's clock.
Every check uses a fresh, random account so caps never collide with other
checks or earlier runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

from conformance import references as ref
from conformance.catalog import DEVICE_SYSTEMS, SYSTEMS, Context, Outcome, check
from conformance.dialects import CONTENT, PERSISTENT, dialect, make_device
from conformance.entitlement import KID, TOKEN_HEADER, claims, mint, server_now

ALL = SYSTEMS
REF = ref.ENTITLEMENTS + " (entitlement tokens, rights: device caps, single-use jti)"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], body: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join((_b64(json.dumps(header).encode()), _b64(json.dumps(body).encode()), _b64(signature)))


def bad_tokens(ctx: Context) -> list[tuple[str, str, str]]:
    """(case, token, expected code): each a distinct way a token is wrong."""
    now = server_now(ctx)
    good = mint(ctx, claims(ctx))
    head, payload, signature = good.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    confusion_header = {"alg": "HS256", "kid": "test-rs256", "typ": "JWT"}
    signing_input = f"{_b64(json.dumps(confusion_header).encode())}.{payload}".encode()
    public_n = next(k for k in json.loads((ctx.keyring.directory / "tokens" / "jwks.json").read_text())["keys"]
                    if k["kid"] == "test-rs256")["n"].encode()
    confused = signing_input.decode() + "." + _b64(hmac.new(public_n, signing_input, hashlib.sha256).digest())
    return [
        ("not a JWS", "not-a-token", "TOKEN_MALFORMED"),
        ("alg none", unsigned({"alg": "none", "kid": KID}, claims(ctx)), "TOKEN_ALGORITHM_NOT_ALLOWED"),
        ("HS256 keyed with the RS256 public key", confused, "TOKEN_ALGORITHM_NOT_ALLOWED"),
        ("unknown kid", unsigned({"alg": "HS256", "kid": "conformance-unknown"}, claims(ctx), b"x" * 32),
         "TOKEN_KEY_UNKNOWN"),
        ("signature altered", f"{head}.{payload}.{flipped}", "TOKEN_SIGNATURE_INVALID"),
        ("expired an hour ago", mint(ctx, claims(ctx, iat=now - 7200, exp=now - 3600)), "TOKEN_EXPIRED"),
        ("not valid for another hour", mint(ctx, claims(ctx, nbf=now + 3600, exp=now + 7200)), "TOKEN_NOT_YET_VALID"),
        ("entitles another title only", mint(ctx, claims(ctx, content=["demo-episode"])), "CONTENT_NOT_ENTITLED"),
    ]


def _device(ctx: Context):
    return None if ctx.system == "clearkey" else make_device(ctx, "L1")


@check("TOK-001", "Bad entitlement tokens are refused, each with its own stable code", systems=ALL,
       severity="critical", reference=REF, needs=("tokens",))
def bad_tokens_refused(ctx: Context) -> Outcome:
    """A valid token is granted (control); a malformed one, alg none, HS/RS algorithm confusion, an unknown kid,
    an altered signature, an expired and a not-yet-valid token and a token for another title are refused with
    TOKEN_MALFORMED, TOKEN_ALGORITHM_NOT_ALLOWED, TOKEN_KEY_UNKNOWN, TOKEN_SIGNATURE_INVALID, TOKEN_EXPIRED,
    TOKEN_NOT_YET_VALID and CONTENT_NOT_ENTITLED."""
    client = dialect(ctx)
    device = _device(ctx)
    control = client.acquire(ctx, device, headers={TOKEN_HEADER: mint(ctx, claims(ctx))})
    rows: list[dict[str, Any]] = [{"case": "valid token (control)", "expected": "granted",
                                   "observed": "granted" if control.granted else control.code}]
    for case, token, code in bad_tokens(ctx):
        attempt = client.acquire(ctx, device, headers={TOKEN_HEADER: token})
        status = client.refusal_status(code)
        observed = "granted" if attempt.granted else f"{attempt.reply.status} {attempt.reply.error_code}"
        rows.append({"case": case, "expected": f"{status} {code}", "observed": observed,
                     "ok": not attempt.granted and (attempt.reply.status, attempt.reply.error_code) == (status, code)})
    evidence = {"request": {"method": "POST", "url": client.url(ctx), "header": TOKEN_HEADER}, "cases": rows}
    if not control.granted:
        return Outcome.failed(f"a valid token was refused ({control.code}), so refusals prove nothing", **evidence)
    wrong = [r["case"] for r in rows[1:] if not r["ok"]]
    if wrong:
        return Outcome.failed(f"not refused with the expected code: {', '.join(wrong)}", **evidence)
    return Outcome.passed(f"{len(rows) - 1} bad tokens refused with their codes", **evidence)


@check("TOK-002", "The token's policy governs the license", systems=ALL, severity="high", reference=REF,
       needs=("tokens",))
def token_policy(ctx: Context) -> Outcome:
    """A token without offline rights gets no persistent license (OFFLINE_NOT_ALLOWED); one with offline rights,
    a 2-day storage and a 3-hour playback window gets a persistent license with exactly those windows."""
    client = dialect(ctx)
    device = _device(ctx)
    denied = client.acquire(ctx, device, CONTENT, PERSISTENT, headers={TOKEN_HEADER: mint(ctx, claims(ctx))})
    policy = {"persistent": True, "rental": "2d", "playback": "3h"}
    allowed = client.acquire(ctx, device, CONTENT, PERSISTENT,
                             headers={TOKEN_HEADER: mint(ctx, claims(ctx, policy=policy))})
    windows = {k: allowed.policy.get(k) for k in ("rental_duration", "playback_duration")}
    evidence = {"without_offline_rights": denied.evidence(), "with_offline_rights": allowed.evidence(),
                "token_policy": policy,
                "expected": {"without": f"{client.refusal_status('OFFLINE_NOT_ALLOWED')} OFFLINE_NOT_ALLOWED",
                             "with": {"granted": True, "rental_duration": 172800, "playback_duration": 10800}},
                "observed": {"without": "granted" if denied.granted else f"{denied.reply.status} {denied.code}",
                             "with": {"granted": allowed.granted, **windows}}}
    if denied.granted or denied.reply.error_code != "OFFLINE_NOT_ALLOWED":
        return Outcome.failed("a token without offline rights did not stop a persistent license", **evidence)
    if not allowed.granted:
        return Outcome.failed(f"a token with offline rights was refused ({allowed.code})", **evidence)
    if ctx.system != "clearkey" and (abs((windows["rental_duration"] or 0) - 172800) > 60
                                     or windows["playback_duration"] != 10800):
        return Outcome.failed(f"the license's windows {windows} are not the token's", **evidence)
    return Outcome.passed("the token decided persistence and the windows", **evidence)


@check("TOK-003", "A single-use token (jti) buys one license", systems=ALL, severity="high", reference=REF,
       needs=("tokens",))
def single_use(ctx: Context) -> Outcome:
    """The same token with a jti: the first request is granted, a second (fresh challenge) gets TOKEN_REUSED."""
    client = dialect(ctx)
    token = mint(ctx, claims(ctx, jti=f"conformance-{secrets.token_hex(8)}"))
    first = client.acquire(ctx, _device(ctx), headers={TOKEN_HEADER: token})
    second = client.acquire(ctx, _device(ctx), headers={TOKEN_HEADER: token})
    status = client.refusal_status("TOKEN_REUSED")
    evidence = {"first": first.evidence(), "second": second.evidence(),
                "expected": {"first": "granted", "second": f"{status} TOKEN_REUSED"}}
    if not first.granted:
        return Outcome.failed(f"the first use was refused ({first.code})", **evidence)
    if second.granted or (second.reply.status, second.reply.error_code) != (status, "TOKEN_REUSED"):
        return Outcome.failed(f"the second use answered {second.reply.status} {second.code}", **evidence)
    return Outcome.passed("second use refused with TOKEN_REUSED", **evidence)


@check("TOK-004", "The account's device cap is enforced, and a release frees the slot", systems=DEVICE_SYSTEMS,
       severity="high", reference=REF, needs=("tokens",))
def device_cap(ctx: Context) -> Outcome:
    """Token with device_cap 1: device A downloads; device B of the same account is refused DEVICE_LIMIT_REACHED;
    A removes its download (release acknowledged); B now gets its license."""
    from conformance.checks_device import lifecycle

    adapter = lifecycle(ctx)
    token = mint(ctx, claims(ctx, device_cap=1, tier="standard", policy={"persistent": True}))
    first, second = adapter.provision(), adapter.provision()

    def get(device) -> dict[str, Any]:
        return adapter.acquire(device, system=ctx.system, content_id=CONTENT, persistent=True, token=token).as_dict()

    steps = [("device A downloads", get(first))]
    steps.append(("device B downloads", get(second)))
    steps.append(("device A removes its download", adapter.remove(first, CONTENT, online=True)))
    steps.append(("device B downloads again", get(second)))
    evidence = {"steps": [{"step": s, "result": r} for s, r in steps],
                "expected": ["granted", "refused DEVICE_LIMIT_REACHED", "release acknowledged", "granted"]}
    (_, a), (_, b), (_, removal), (_, again) = steps
    if a["status"] != "granted":
        return Outcome.failed(f"device A was refused ({a['error_code']})", **evidence)
    if b["status"] == "granted" or b["error_code"] != "DEVICE_LIMIT_REACHED":
        return Outcome.failed(f"a second device beyond the cap got {b['status']} {b['error_code']}", **evidence)
    if not removal.get("released"):
        return Outcome.failed("device A's release was not acknowledged", **evidence)
    if again["status"] != "granted":
        return Outcome.failed(f"the released slot was not freed ({again['error_code']})", **evidence)
    return Outcome.passed("cap enforced; the release freed the slot", **evidence)
