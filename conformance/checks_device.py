"""Device-side checks: offline enforcement, secure clock and destruction records.

They run through the :mod:`conformance.device_adapter` interface (the reference
emulator by default), against licenses the target server issues. A dialect
whose offline lifecycle the adapter does not implement is *not applicable*,
with that reason; once the adapter supports it, the same function runs.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from conformance import references as ref
from conformance.catalog import DEVICE_SYSTEMS, Context, NotApplicable, Outcome, check
from conformance.device_adapter import Decision
from conformance.entitlement import license_request, strict

CONTENT = "demo-movie"
REF_WINDOWS = ref.cite(ref.OFFLINE_CLOCKS + " (storage window from download, playback window from first play)",
                       ref.WIDEVINE + " (rental and playback durations)")


def lifecycle(ctx: Context):
    """The adapter, if it implements the offline lifecycle of ``ctx.system``."""
    adapter = ctx.adapter
    if ctx.system not in adapter.lifecycle_systems():
        raise NotApplicable(f"the device adapter ({adapter.describe()['name']}) does not implement the offline "
                            f"lifecycle of {ctx.system} yet (it does: {', '.join(adapter.lifecycle_systems())})")
    return adapter


def policy_request(ctx: Context, device, policy: dict[str, Any]) -> tuple[str, str | None]:
    """(query, token) asking the target for ``policy``: the dialect's ``cfg=`` keys on a development-mode
    test server, the token's policy claim on a strict one."""
    if ctx.system == "playready" and "rental" in policy and not strict(ctx):
        from datetime import datetime

        end = datetime.fromtimestamp(device.now() + policy["rental"], tz=UTC).strftime("%Y%m%d%H%M%S")
        return f"?cfg=(persist:true,firstexp:{policy['playback']},enddate:{end})", None
    return license_request(ctx, **policy)


def download(ctx: Context, device, *, rental: int | None = None, playback: int | None = None,
             policy: dict[str, Any] | None = None, server: str | None = None) -> tuple[Any, dict, str | None]:
    """A persistent license stored on the device; (result, evidence, problem or None)."""
    adapter = lifecycle(ctx)
    wanted = dict(policy or {}, **({"rental": rental, "playback": playback} if rental is not None else {}))
    query, token = policy_request(ctx, device, wanted)
    result = adapter.acquire(device, system=ctx.system, content_id=CONTENT, persistent=True, query=query,
                             server=server, token=token)
    evidence: dict[str, Any] = {"request": {"dialect": ctx.system, "content_id": CONTENT, "license_type": "persistent",
                                            "policy_asked": wanted, "query": query,
                                            "entitlement_token": bool(token)}, "acquire": result.as_dict()}
    if result.status != "granted":
        return result, evidence, f"the persistent license was refused ({result.error_code})"
    if rental is not None and ctx.system != "playready":
        got = (result.policy.get("rental_duration"), result.policy.get("playback_duration"))
        if got != (rental, playback):
            return result, evidence, f"the server ignored the requested windows (got storage/playback {got})"
    return result, evidence, None


def play(ctx: Context, device, evidence: dict, label: str) -> Decision:
    decision = ctx.adapter.play(device, CONTENT)
    evidence.setdefault("plays", []).append({"when": label, **decision.as_dict()})
    return decision


def _expect(decision: Decision, reason: str | None, evidence: dict, ok: str) -> Outcome:
    wanted = ("play", None) if reason is None else ("refused", reason)
    evidence["observed"] = {"decision": decision.decision, "reason": decision.reason}
    if (decision.decision, decision.reason if reason else None) == wanted:
        return Outcome.passed(ok, **evidence)
    return Outcome.failed(f"observed {decision.decision} {decision.reason or ''}".strip(), **evidence)

# -------------------------------------------------------------- offline expiry


@check("OFF-001", "Storage window: a never-played download expires when the storage window ends",
       systems=DEVICE_SYSTEMS, severity="high", reference=REF_WINDOWS, needs=("test-clock",))
def storage_window(ctx: Context) -> Outcome:
    """Download with a 1 h storage window, never play, move the device clock past it: STORAGE_WINDOW_EXPIRED."""
    adapter = lifecycle(ctx)
    device = adapter.provision()
    _, evidence, problem = download(ctx, device, rental=3600, playback=600)
    if problem:
        return Outcome.failed(problem, **evidence)
    adapter.advance_clock(device, 3601)
    evidence["expected"] = "refused STORAGE_WINDOW_EXPIRED"
    return _expect(play(ctx, device, evidence, "device clock +3601 s, never played"), "STORAGE_WINDOW_EXPIRED",
                   evidence, "refused after the storage window")


@check("OFF-002", "Playback window runs from the first play, not from the download", systems=DEVICE_SYSTEMS,
       severity="high", reference=REF_WINDOWS, needs=("test-clock",))
def playback_window(ctx: Context) -> Outcome:
    """Storage 1 d, playback 10 min: first play 1000 s after download works; 601 s after that:
    PLAYBACK_WINDOW_EXPIRED."""
    adapter = lifecycle(ctx)
    device = adapter.provision()
    _, evidence, problem = download(ctx, device, rental=86400, playback=600)
    if problem:
        return Outcome.failed(problem, **evidence)
    evidence["expected"] = "play at +1000 s, refused PLAYBACK_WINDOW_EXPIRED at +1601 s"
    adapter.advance_clock(device, 1000)
    first = play(ctx, device, evidence, "+1000 s (first play)")
    if first.decision != "play":
        return Outcome.failed(f"the first play was refused ({first.reason}): the playback window seems to run "
                              "from the download", **evidence)
    adapter.advance_clock(device, 601)
    return _expect(play(ctx, device, evidence, "+1601 s (601 s after the first play)"), "PLAYBACK_WINDOW_EXPIRED",
                   evidence, "the playback window started at the first play")


@check("OFF-003", "The earlier of the two windows wins", systems=DEVICE_SYSTEMS, severity="high",
       reference=REF_WINDOWS, needs=("test-clock",))
def earlier_wins(ctx: Context) -> Outcome:
    """Storage 1 h, playback 2 h, first play at +50 min: at +61 min playback is refused with STORAGE_WINDOW_EXPIRED
    although the playback window still runs."""
    adapter = lifecycle(ctx)
    device = adapter.provision()
    _, evidence, problem = download(ctx, device, rental=3600, playback=7200)
    if problem:
        return Outcome.failed(problem, **evidence)
    evidence["expected"] = "play at +3000 s, refused STORAGE_WINDOW_EXPIRED at +3660 s"
    adapter.advance_clock(device, 3000)
    if play(ctx, device, evidence, "+3000 s (first play)").decision != "play":
        return Outcome.failed("the first play inside both windows was refused", **evidence)
    adapter.advance_clock(device, 660)
    return _expect(play(ctx, device, evidence, "+3660 s (storage window over, playback window not)"),
                   "STORAGE_WINDOW_EXPIRED", evidence, "the storage window ended playback first")


@check("OFF-004", "Turning the device clock back stops offline playback until the device syncs",
       systems=DEVICE_SYSTEMS, severity="high", reference=ref.OFFLINE + " (secure clock, rollback)")
def clock_rollback(ctx: Context) -> Outcome:
    """Play, turn the device clock back 2 days: refused CLOCK_ROLLBACK (no window is extended); after an online
    sync of trusted time it plays again."""
    adapter = lifecycle(ctx)
    device = adapter.provision()
    _, evidence, problem = download(ctx, device)
    if problem:
        return Outcome.failed(problem, **evidence)
    evidence["expected"] = "play; refused CLOCK_ROLLBACK after -2 d; play again after sync"
    if play(ctx, device, evidence, "now (first play)").decision != "play":
        return Outcome.failed("the fresh download does not play", **evidence)
    adapter.advance_clock(device, -2 * 86400)
    after = play(ctx, device, evidence, "device clock turned back 2 days")
    if (after.decision, after.reason) != ("refused", "CLOCK_ROLLBACK"):
        return Outcome.failed(f"a clock turned back 2 days gave {after.decision} {after.reason}", **evidence)
    evidence["sync"] = adapter.sync(device)
    return _expect(play(ctx, device, evidence, "after an online time sync"), None, evidence,
                   "rollback refused until the device synced trusted time")


@check("LIC-005", "A persistent license loads offline, after a device restart", systems=DEVICE_SYSTEMS,
       severity="high", reference=ref.cite(ref.DOWNLOADS + " (the license is the first of the two downloads)",
                                                  ref.EME_SESSION_TYPES))
def persistent_loads_offline(ctx: Context) -> Outcome:
    """Download a persistent license, restart the device (storage only), play with no network: play."""
    adapter = lifecycle(ctx)
    device = adapter.provision()
    _, evidence, problem = download(ctx, device)
    if problem:
        return Outcome.failed(problem, **evidence)
    device = adapter.restart(device)
    evidence["expected"] = "play after a restart, offline"
    return _expect(play(ctx, device, evidence, "after restart, offline"), None, evidence,
                   "the stored license plays offline")

# ------------------------------------------------------------------ destruction


@check("DES-001", "Removal is immediate, even offline", systems=DEVICE_SYSTEMS, severity="high",
       reference=ref.cite(ref.DESTRUCTION, ref.EME_REMOVE))
def removal_immediate(ctx: Context) -> Outcome:
    """After ``remove`` without network the stored license plays no more: LICENSE_RELEASED."""
    adapter = lifecycle(ctx)
    device = adapter.provision()
    _, evidence, problem = download(ctx, device)
    if problem:
        return Outcome.failed(problem, **evidence)
    evidence["expected"] = "play before removal, refused LICENSE_RELEASED right after"
    if play(ctx, device, evidence, "before removal").decision != "play":
        return Outcome.failed("the fresh download does not play", **evidence)
    evidence["remove"] = adapter.remove(device, CONTENT, online=False)
    return _expect(play(ctx, device, evidence, "right after removal (offline)"), "LICENSE_RELEASED", evidence,
                   "removed licenses stop playing at once")


def _removed_offline(ctx: Context) -> tuple[Any, Any, dict, str | None]:
    adapter = lifecycle(ctx)
    device = adapter.provision()
    result, evidence, problem = download(ctx, device)
    if problem:
        return adapter, device, evidence, problem
    evidence["remove"] = adapter.remove(device, CONTENT, online=False)
    return adapter, device, evidence, None


def _records(storage: dict) -> list[dict]:
    return storage["destruction_records"]


@check("DES-003", "The destruction record survives a device restart", systems=DEVICE_SYSTEMS, severity="high",
       reference=ref.DESTRUCTION)
def record_survives_restart(ctx: Context) -> Outcome:
    """Remove offline, restart the device: the destruction record (with its signed release) is still stored,
    and the next sync delivers it."""
    adapter, device, evidence, problem = _removed_offline(ctx)
    if problem:
        return Outcome.failed(problem, **evidence)
    device = adapter.restart(device)
    storage = adapter.storage(device)
    evidence["storage_after_restart"] = storage
    evidence["expected"] = "one destruction record with a release after the restart; none after sync"
    records = _records(storage)
    if len(records) != 1 or not records[0]["has_release"]:
        return Outcome.failed(f"after the restart the device holds {len(records)} destruction record(s)", **evidence)
    evidence["sync"] = adapter.sync(device)
    left = _records(adapter.storage(device))
    evidence["records_after_sync"] = left
    if left:
        return Outcome.failed("the record was not delivered by the sync after the restart", **evidence)
    return Outcome.passed("the record survived the restart and was delivered", **evidence)


@check("DES-004", "Release is retried until the server acknowledges it", systems=DEVICE_SYSTEMS,
       severity="medium", reference=ref.cite(ref.DESTRUCTION, ref.EME_REMOVE))
def release_retried(ctx: Context) -> Outcome:
    """Download through a relay, remove offline, take the relay down: two syncs fail and the record stays (with
    its attempts counted); with the relay up again the next sync delivers it and the record is purged."""
    from conformance.relay import Relay

    adapter = lifecycle(ctx)
    with Relay(ctx.server) as relay:
        device = adapter.provision()
        _, evidence, problem = download(ctx, device, server=relay.url)
        if problem:
            return Outcome.failed(problem, **evidence)
        evidence["remove"] = adapter.remove(device, CONTENT, online=False)
        relay.down = True
        evidence["syncs_while_down"] = [adapter.sync(device, server=relay.url) for _ in range(2)]
        pending = _records(adapter.storage(device))
        evidence["records_while_down"] = pending
        evidence["expected"] = "record kept with 2 attempts while the server is unreachable; purged after the ack"
        if len(pending) != 1 or pending[0]["attempts"] < 2:
            return Outcome.failed("the destruction record was lost, or the failed attempts not counted, while the "
                                  "server was unreachable", **evidence)
        relay.down = False
        evidence["sync"] = adapter.sync(device, server=relay.url)
    left = _records(adapter.storage(device))
    if left:
        return Outcome.failed(f"the record is still pending after a reachable sync: {left}", **evidence)
    return Outcome.passed("kept while unreachable, purged once acknowledged", **evidence)


@check("DES-005", "After the acknowledged release the license is gone from the device", systems=DEVICE_SYSTEMS,
       severity="high", reference=ref.cite(ref.DESTRUCTION, ref.EME_REMOVE))
def load_fails_after_ack(ctx: Context) -> Outcome:
    """Remove online (release acknowledged): the device stores neither the license nor a record, and playback is
    refused."""
    adapter = lifecycle(ctx)
    device = adapter.provision()
    _, evidence, problem = download(ctx, device)
    if problem:
        return Outcome.failed(problem, **evidence)
    evidence["remove"] = adapter.remove(device, CONTENT, online=True)
    device = adapter.restart(device)
    storage = adapter.storage(device)
    evidence["storage"] = storage
    evidence["expected"] = "no license and no record stored; playback refused"
    decision = play(ctx, device, evidence, "after the acknowledged release and a restart")
    if storage["licenses"] or storage["destruction_records"]:
        return Outcome.failed("the device still stores the license or its record", **evidence)
    if decision.decision != "refused":
        return Outcome.failed("the released license still plays", **evidence)
    return Outcome.passed(f"nothing left; playback refused ({decision.reason})", **evidence)
