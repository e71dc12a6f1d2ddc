"""Concurrent-stream checks (``STR-001`` .. ``STR-006``): limits per account, leases, release, eviction,
renewal recovery and heartbeat retries.

Each check streams with fresh emulated devices through the device emulator's
streaming drivers (:mod:`device_emulator.streaming`: Widevine RENEWAL, PlayReady
re-acquired short license + Secure Stop, FairPlay lease renewal + lease end) and
a token for a fresh account carrying ``max_streams`` (and ``stream_mode``).
Sessions a check leaves open are ended before it returns. Clear Key has no
renewal exchange, so no heartbeat: every STR check is not applicable to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from conformance import references as ref
from conformance.catalog import Context, NotApplicable, Outcome, check
from conformance.dialects import make_device
from conformance.entitlement import LIFETIME, TOKEN_HEADER, claims, mint, server_now
from conformance.target import server_clock
from device_emulator import streaming, transport
from device_emulator.errors import CdmError, TransportError

STREAMING = ("widevine", "playready", "fairplay")
CONTENT = "demo-movie"
NO_HEARTBEAT = {"clearkey": "W3C Clear Key has no renewal exchange (EME 'org.w3.clearkey' defines license "
                            "and release messages only): a stream sends no heartbeat, so no session can be held"}
REF = ref.cite("docs/streams.md, Concurrent streams", ref.WIDEVINE + ": renewal delay, retry and recovery",
               ref.PLAYREADY_SECURE_STOP, ref.FAIRPLAY)


def stream_token(ctx: Context, account: str | None = None, **claim: Any) -> str:
    now = server_now(ctx)
    body = claims(ctx, tier="premium", iat=now, exp=now + LIFETIME, **claim)
    if account:
        body["sub"] = account
    return mint(ctx, body)


class Player:
    """One device streaming through the emulator's driver for the dialect under test."""

    def __init__(self, ctx: Context, token: str, device: Any = None) -> None:
        self.device = device or make_device(ctx)
        self.driver = streaming.DRIVERS[ctx.system](self.device, server=ctx.server, system=ctx.system,
                                                    content_id=CONTENT, url=None, headers={TOKEN_HEADER: token})
        self.open = False

    def attempt(self, step: str) -> str:
        """Start, or heartbeat once started: "granted" or the refusal code."""
        try:
            self.driver.beat() if self.open else self.driver.start()
        except streaming.StreamStop as stop:
            return stop.code
        except TransportError:
            return "TRANSPORT_ERROR"
        except CdmError as exc:
            return exc.code
        self.open = True
        return "granted"

    def end(self) -> str:
        self.open = False
        return self.driver.end()


@contextmanager
def players(ctx: Context) -> Iterator[list[Player]]:
    started: list[Player] = []
    try:
        yield started
    finally:
        for player in started:
            if player.open:
                try:
                    player.end()
                except (TransportError, CdmError, streaming.StreamStop):
                    pass  # best effort: the session lapses with its lease anyway
            player.driver.close()


def _steps(rows: list[dict[str, Any]], passed: str) -> Outcome:
    wrong = next((r for r in rows if r["observed"] != r["expected"]), None)
    evidence = {"steps": rows, "expected": [r["expected"] for r in rows], "observed": [r["observed"] for r in rows]}
    if wrong is not None:
        return Outcome.failed(f"{wrong['step']}: expected {wrong['expected']}, observed {wrong['observed']}",
                              **evidence)
    return Outcome.passed(passed, **evidence)


def _run(rows: list[dict[str, Any]], step: str, expected: str, observed: str) -> None:
    rows.append({"step": step, "expected": expected, "observed": observed})


@check("STR-001", "The stream limit is enforced per account", systems=STREAMING, severity="high", reference=REF,
       needs=("tokens",), not_applicable=NO_HEARTBEAT)
def limit_per_account(ctx: Context) -> Outcome:
    """max_streams 1: a second device of the account is refused STREAM_LIMIT_REACHED; another account streams."""
    rows: list[dict[str, Any]] = []
    token = stream_token(ctx, max_streams=1)
    with players(ctx) as started:
        started += [Player(ctx, token), Player(ctx, token), Player(ctx, stream_token(ctx, max_streams=1))]
        _run(rows, "first device starts", "granted", started[0].attempt("start"))
        _run(rows, "second device of the account", "STREAM_LIMIT_REACHED", started[1].attempt("start"))
        _run(rows, "a device of another account", "granted", started[2].attempt("start"))
    return _steps(rows, "the account's second stream was refused; another account's stream was not")


@check("STR-002", "A lapsed lease frees the slot", systems=STREAMING, severity="high", reference=REF,
       needs=("tokens", "test-clock"), not_applicable=NO_HEARTBEAT)
def lapsed_lease(ctx: Context) -> Outcome:
    """max_streams 1: the first device stops heartbeating; once its license (lease plus grace) ran out, a second
    device is granted."""
    rows: list[dict[str, Any]] = []
    token = stream_token(ctx, max_streams=1)
    with server_clock(ctx) as clock, players(ctx) as started:
        first, second = Player(ctx, token), Player(ctx, token)
        started += [first, second]
        _run(rows, "first device starts", "granted", first.attempt("start"))
        _run(rows, "second device while the lease runs", "STREAM_LIMIT_REACHED", second.attempt("start"))
        first.open = False  # it walks away: no heartbeat, no release
        window = _window(first.driver.policy)
        clock.advance(window + 1, second.device)
        _run(rows, f"second device {window + 1} s later", "granted", second.attempt("start"))
    return _steps(rows, "the slot was free once the abandoned stream's lease lapsed")


@check("STR-003", "Release, Secure Stop or lease end frees the slot at once", systems=STREAMING, severity="high",
       reference=REF, needs=("tokens",), not_applicable=NO_HEARTBEAT)
def released_at_once(ctx: Context) -> Outcome:
    """max_streams 1: the first device ends its stream (Widevine RELEASE, PlayReady Secure Stop, FairPlay lease
    end); a second device is granted at once, with no clock moved."""
    rows: list[dict[str, Any]] = []
    token = stream_token(ctx, max_streams=1)
    with players(ctx) as started:
        first, second = Player(ctx, token), Player(ctx, token)
        started += [first, second]
        _run(rows, "first device starts", "granted", first.attempt("start"))
        _run(rows, "second device", "STREAM_LIMIT_REACHED", second.attempt("start"))
        rows.append({"step": "first device ends its stream", "expected": "ended", "observed": "ended",
                     "answer": first.end()})
        _run(rows, "second device right after", "granted", second.attempt("start"))
    return _steps(rows, "ending the stream freed its slot at once")


@check("STR-004", "evict_oldest ends the oldest stream and refuses its next heartbeat", systems=STREAMING,
       severity="medium", reference=REF, needs=("tokens",), not_applicable=NO_HEARTBEAT)
def evict_oldest(ctx: Context) -> Outcome:
    """max_streams 1, evict_oldest: a second device is granted and the first device's next heartbeat is refused
    STREAM_EVICTED."""
    rows: list[dict[str, Any]] = []
    token = stream_token(ctx, max_streams=1, stream_mode="evict_oldest")
    with players(ctx) as started:
        first, second = Player(ctx, token), Player(ctx, token)
        started += [first, second]
        _run(rows, "first device starts", "granted", first.attempt("start"))
        _run(rows, "second device starts", "granted", second.attempt("start"))
        _run(rows, "first device's heartbeat", "STREAM_EVICTED", first.attempt("heartbeat"))
        first.open = False
    return _steps(rows, "the oldest stream was evicted and told so at its next heartbeat")


@check("STR-005", "A renewal after the recovery window is refused", systems=("widevine",), severity="high",
       reference=REF, needs=("tokens", "test-clock"),
       not_applicable={**NO_HEARTBEAT,
                       "playready": "a PlayReady-style heartbeat is a new short license, not a renewal of the "
                                    "expired one: there is no renewal to refuse",
                       "fairplay": "a FairPlay-style lease renewal is a new SPC for a new key, not a renewal of "
                                   "the expired one: there is no renewal to refuse"})
def renewal_after_recovery(ctx: Context) -> Outcome:
    """A streaming license under a limit is renewable: a heartbeat before its end is accepted; one after the
    license ran out (recovery 0) is refused LICENSE_EXPIRED."""
    rows: list[dict[str, Any]] = []
    token = stream_token(ctx, max_streams=1)
    with server_clock(ctx) as clock, players(ctx) as started:
        player = Player(ctx, token)
        started.append(player)
        _run(rows, "start", "granted", player.attempt("start"))
        delay = int(player.driver.policy.get("renewal_delay") or 1)
        clock.advance(delay, player.device)
        _run(rows, f"heartbeat at +{delay} s", "granted", player.attempt("heartbeat"))
        window = _window(player.driver.policy) + int(player.driver.policy.get("renewal_recovery_duration") or 0)
        clock.advance(window + 1, player.device)
        _run(rows, f"heartbeat {window + 1} s later", "LICENSE_EXPIRED", player.attempt("heartbeat"))
        player.open = False
    return _steps(rows, "the renewal past the recovery window was refused")


@check("STR-006", "The device retries a failed heartbeat and recovers within the window", systems=STREAMING,
       severity="medium", reference=REF, needs=("tokens", "test-clock", "admin"), not_applicable=NO_HEARTBEAT)
def heartbeat_retry(ctx: Context) -> Outcome:
    """Five minutes of streaming on the test clock with the next two heartbeats failing (injected faults): the
    device retries, the stream completes, and the server's session counted the heartbeats that got through."""
    token = stream_token(ctx, max_streams=1)
    player = Player(ctx, token)
    with server_clock(ctx) as clock:
        def advance(step: int) -> None:
            if step > 0:
                clock.advance(step, player.device)

        injected: list[str] = []

        def inject() -> None:
            injected.append(streaming.inject_heartbeat_failures(ctx.server, ctx.system, 2, ctx.admin_token or ""))

        try:
            timeline, stop = streaming.play_stream(player.driver, seconds=300, advance=advance, on_started=inject)
        finally:
            for fault_id in injected:  # a heartbeat that never came leaves its fault: remove it
                streaming.remove_fault(ctx.server, fault_id, ctx.admin_token or "")
        session = _session(ctx, player.driver.license_id)
    evidence = {"events": timeline.events, "session": session}
    if stop is not None:
        return Outcome.failed(f"the stream stopped: {stop.code}: {stop.message}", **evidence)
    if timeline.count("heartbeat_failed") != 2 or not timeline.count("heartbeat"):
        return Outcome.failed("expected two failed heartbeats followed by successful ones", **evidence)
    if session is None or session["heartbeats"] < timeline.count("heartbeat"):
        return Outcome.failed("the server holds no stream session that counted the device's heartbeats", **evidence)
    return Outcome.passed("two failed heartbeats were retried within the recovery window", **evidence)


def _window(policy: dict[str, Any]) -> int:
    return int(policy.get("license_duration") or policy.get("lease_duration") or 0) or 90


def _session(ctx: Context, license_id: str) -> dict[str, Any] | None:
    reply = transport.get(ctx.url("/admin/streams?all=true"), headers=ctx.admin_headers())
    if reply.status != 200:
        raise NotApplicable(f"GET /admin/streams answered HTTP {reply.status}")
    for account in json.loads(reply.body)["accounts"]:
        for session in account["sessions"]:
            if session["session_id"] == license_id or session["license_id"] == license_id:
                return dict(session)
    return None
