"""Concurrent-stream limits: the pure decisions, the store's transactions, the settings, and each dialect's
native refusal shape (in-process over real HTTP on a frozen clock).

The end-to-end scenarios through the CLIs are in tests/test_streams_cli.py.
"""

from __future__ import annotations

import json

import pytest

from license_server.core import entitlements, streams
from license_server.core.model import Grant, LicenseKind, LicensePolicy
from license_server.core.streams import SessionState, StreamMode, StreamRules, StreamSession, StreamStart
from license_server.errors import ERROR_CODE_HEADER, DrmError, ErrorCode
from license_server.protocols.cfg import parse_overrides
from license_server.protocols.widevine import codec
from license_server.rights import Rights, TierRights
from license_server.store_api import RIGHTS_DOCUMENT
from license_server.store_schema import MIGRATIONS, RESET_TABLES
from license_server.tokens import TokenClaims
from tests.conftest import START
from tests.tokens_support import token

RULES = StreamRules("acct", max_streams=2, mode=StreamMode.BLOCK_NEW, lease=60, grace=30)


def session(sid: str, *, opened: int = START, lease_until: int | None = None, state: str = "open",
            continuation: str | None = None) -> StreamSession:
    return StreamSession(sid, "acct", "widevine", f"dev-{sid}", "demo-movie", sid, continuation, state, opened,
                         opened, lease_until if lease_until is not None else opened + 60, 60, 30, 2, "block_new")


def start(continuation: str | None = None, rules: StreamRules = RULES) -> StreamStart:
    return StreamStart(rules, "widevine", "dev-new", "demo-movie", continuation)


# ------------------------------------------------------------ pure decisions


def test_block_new_refuses_over_the_limit_and_counts_only_live_sessions() -> None:
    two = (session("a"), session("b"))
    with pytest.raises(DrmError) as refused:
        streams.decide_open(start(), two, START + 10)
    assert refused.value.code is ErrorCode.STREAM_LIMIT_REACHED
    assert streams.decide_open(start(), two, START + 91) == streams.OpenDecision()  # lease 60 + grace 30 passed
    assert streams.decide_open(start(), (session("a"), session("b", state="closed")), START) \
        == streams.OpenDecision()


def test_evict_oldest_names_the_oldest_live_sessions() -> None:
    rules = StreamRules("acct", 2, StreamMode.EVICT_OLDEST)
    sessions = (session("new", opened=START + 5), session("old"), session("gone", opened=START - 500))
    assert streams.decide_open(start(rules=rules), sessions, START + 10).evict == ("old",)
    zero = StreamRules("acct", 0, StreamMode.EVICT_OLDEST)
    with pytest.raises(DrmError):
        streams.decide_open(start(rules=zero), (), START)


def test_a_reacquired_license_continues_its_playback_and_an_evicted_one_is_refused() -> None:
    live = session("a", continuation="dev:demo-movie:")
    assert streams.decide_open(start("dev:demo-movie:"), (live, session("b")), START + 10).continue_session == "a"
    evicted = session("a", state="evicted", continuation="dev:demo-movie:")
    with pytest.raises(DrmError) as refused:
        streams.decide_open(start("dev:demo-movie:"), (evicted,), START + 10)
    assert refused.value.code is ErrorCode.STREAM_EVICTED
    assert streams.decide_open(start("dev:demo-movie:"), (evicted,), START + 91) == streams.OpenDecision()


def test_heartbeat_checks() -> None:
    streams.check_heartbeat(session("a"), (session("a"),), START + 90)
    for state in ("evicted", "ended", "closed"):
        with pytest.raises(DrmError) as refused:
            streams.check_heartbeat(session("a", state=state), (), START)
        assert refused.value.code is ErrorCode.STREAM_EVICTED
    lapsed = session("a")
    streams.check_heartbeat(lapsed, (lapsed, session("b", opened=START + 100)), START + 120)  # one slot left
    with pytest.raises(DrmError) as taken:
        streams.check_heartbeat(lapsed, (session("b", opened=START + 100), session("c", opened=START + 100)),
                                START + 120)
    assert taken.value.code is ErrorCode.STREAM_LIMIT_REACHED


def test_heartbeat_policy_is_short_and_renewable() -> None:
    policy = streams.heartbeat_policy(LicensePolicy(license_duration=86400), RULES)
    assert (policy.can_renew, policy.license_duration, policy.renewal_delay, policy.lease_duration) \
        == (True, 90, 30, 90)
    assert streams.heartbeat_policy(LicensePolicy(license_duration=40, renewal_delay=20), RULES).license_duration == 40


def test_stream_rules_come_from_the_token_then_the_tier() -> None:
    rights = Rights(tiers={"premium": TierRights(max_streams=4, stream_mode="evict_oldest", stream_lease=120,
                                                 stream_grace=10)})
    claims = TokenClaims.model_validate({"sub": "alice", "tier": "premium", "content": ["demo-movie"],
                                         "exp": START + 60})
    rules = entitlements.stream_rules(rights, entitlements.from_claims(claims))
    assert rules == StreamRules("alice", 4, StreamMode.EVICT_OLDEST, 120, 10)
    capped = claims.model_copy(update={"max_streams": 1, "stream_mode": "block_new"})
    assert entitlements.stream_rules(rights, entitlements.from_claims(capped)).max_streams == 1
    assert entitlements.stream_rules(rights, entitlements.DEVELOPMENT_DEFAULT) is None  # no account, no limit
    assert entitlements.stream_rules(Rights(), entitlements.from_claims(claims)) is None
    with pytest.raises(ValueError):
        TokenClaims.model_validate({**claims.model_dump(), "stream_mode": "kick_everyone"})


def test_renewal_settings_from_cfg_tokens_and_rights() -> None:
    cfg = parse_overrides({"cfg": "(renewdelay:60,renewretry:10,renewrecovery:30,renewurl:https://r.example/x,"
                                  "renewusage:true)"})
    policy = cfg.apply(LicensePolicy(), 0)
    assert (policy.renewal_delay, policy.renewal_retry_interval, policy.renewal_recovery_duration,
            policy.renewal_server_url, policy.renew_with_usage) == (60, 10, 30, "https://r.example/x", True)
    with pytest.raises(DrmError) as bad:
        parse_overrides({"cfg": "(renewurl:ftp://x)"})
    assert bad.value.code is ErrorCode.INVALID_POLICY_OVERRIDE and "renewurl" in bad.value.message
    claims = TokenClaims.model_validate({"sub": "a", "content": ["demo-movie"], "exp": START, "policy": {
        "renewal_server_url": "https://renew.example", "renew_with_usage": True, "renewal_delay": "1m"}})
    overrides = entitlements.from_claims(claims).overrides
    assert (overrides.renewal_server_url, overrides.renew_with_usage, overrides.renewal_delay) \
        == ("https://renew.example", True, 60)
    title = Rights.model_validate({"titles": {"demo-movie": {"renewal_delay": "2m", "renewal_retry": 15,
                                                             "renewal_server_url": "https://t.example"}}})
    terms = entitlements.title_overrides(title.title("demo-movie"))
    assert (terms.renewal_delay, terms.renewal_retry_interval, terms.renewal_server_url) \
        == (120, 15, "https://t.example")


# ------------------------------------------------------------------ the store


def grant(license_id: str) -> Grant:
    return Grant(license_id=license_id, content_id="demo-movie", kind=LicenseKind.TEMPORARY, keys=(),
                 policy=LicensePolicy(can_renew=True), issued_at=START, device=None)


def open_stream(store, license_id: str, *, now: int = START, rules: StreamRules = RULES,
                continuation: str | None = None) -> None:
    store.record_grant(grant(license_id), system="widevine", request_key=f"rq-{license_id}-{now}", secrets={},
                       now=now, stream=StreamStart(rules, "widevine", f"dev-{license_id}", "demo-movie", continuation))


def test_migration_9_and_reset_cover_the_stream_tables(any_store) -> None:
    assert any_store.schema_version == len(MIGRATIONS) >= 9
    assert {"stream_sessions", "stream_licenses"} <= set(RESET_TABLES)


def test_store_opens_refuses_and_leaves_nothing_written_on_refusal(any_store) -> None:
    open_stream(any_store, "a")
    open_stream(any_store, "b")
    with pytest.raises(DrmError) as refused:
        open_stream(any_store, "c")
    assert refused.value.code is ErrorCode.STREAM_LIMIT_REACHED
    assert any_store.license("c") is None  # the grant's transaction rolled back with the refusal
    assert [s.session_id for s in any_store.streams(now=START)] == ["a", "b"]


def test_store_evicts_the_oldest_and_refuses_its_heartbeat(any_store) -> None:
    rules = StreamRules("acct", 1, StreamMode.EVICT_OLDEST)
    open_stream(any_store, "a", rules=rules)
    open_stream(any_store, "b", now=START + 1, rules=rules)
    with pytest.raises(DrmError) as refused:
        any_store.record_lifecycle("a", event="renewal", state="renewed", now=START + 2, system="widevine",
                               stream_heartbeat=True)
    assert refused.value.code is ErrorCode.STREAM_EVICTED
    assert any_store.license("a").state == "issued"  # the renewal wrote nothing
    every = {s.session_id: s.state for s in any_store.streams(now=START + 2, include_ended=True)}
    assert every == {"a": SessionState.EVICTED.value, "b": SessionState.OPEN.value}


def test_store_heartbeat_extends_the_lease_and_release_closes_at_once(any_store) -> None:
    open_stream(any_store, "a")
    any_store.record_lifecycle("a", event="renewal", state="renewed", now=START + 80, system="widevine",
                           stream_heartbeat=True)
    (renewed,) = any_store.streams(now=START + 80)
    assert (renewed.lease_until, renewed.heartbeats) == (START + 140, 1)
    assert any_store.mark_released("a", now=START + 81, system="widevine", reason="release acknowledged")
    assert any_store.streams(now=START + 81) == []
    audit = [row["event"] for row in any_store.audit_trail(license_id="a")]
    assert {"stream_open", "stream_close"} <= set(audit)


def test_store_continuation_and_operator_end(any_store) -> None:
    open_stream(any_store, "a", continuation="dev:demo-movie:")
    open_stream(any_store, "a2", now=START + 30, continuation="dev:demo-movie:")  # the same playback re-acquired
    (only,) = any_store.streams(now=START + 30)
    assert (only.session_id, only.license_id, only.lease_until) == ("a", "a2", START + 90)
    ended = any_store.end_stream("a", now=START + 31, reason="operator")
    assert ended is not None and ended.state == "ended"
    assert any_store.end_stream("missing", now=START, reason="") is None
    with pytest.raises(DrmError) as refused:
        open_stream(any_store, "a3", now=START + 40, continuation="dev:demo-movie:")
    assert refused.value.code is ErrorCode.STREAM_EVICTED


def test_store_a_lapsed_lease_frees_the_slot_and_lease_end_closes_by_playback(any_store) -> None:
    open_stream(any_store, "a")
    open_stream(any_store, "b", continuation="dev-b:demo-movie:play-1")
    with pytest.raises(DrmError):
        open_stream(any_store, "c", now=START + 90)  # lease 60 + grace 30: still held
    open_stream(any_store, "c", now=START + 91)  # both lapsed: the slot is free again
    assert [s.session_id for s in any_store.streams(now=START + 91)] == ["c"]
    assert any_store.close_stream(system="widevine", device_id="dev-b", playback_id="play-1", now=START + 92,
                                  reason="lease end") == ["b"]  # lapsed, not yet ended: lease end ends it
    open_stream(any_store, "d", now=START + 92, continuation="dev-d:demo-movie:play-2")
    assert any_store.close_stream(system="widevine", device_id="dev-d", playback_id="play-2", now=START + 93,
                                  reason="lease end") == ["d"]
    assert [s.session_id for s in any_store.streams(now=START + 93)] == ["c"]


def test_the_per_request_stream_queries_use_an_index(store) -> None:
    from license_server.store_streams import _SELECT

    for sql, args in ((f"{_SELECT} WHERE account = ? AND (state = 'open' OR lease_until + grace >= ?)", ("a", 1)),
                      (f"{_SELECT} WHERE session_id = (SELECT session_id FROM stream_licenses WHERE license_id = ?)",
                       ("x",)),
                      (f"{_SELECT} WHERE system = ? AND device_id = ? AND state = 'open'", ("widevine", "d"))):
        plan = " ".join(str(row[-1]) for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}", args).fetchall())
        assert "SCAN" not in plan.replace("SCAN CONSTANT ROW", ""), (sql, plan)


def test_group_commit_store_routes_stream_writes(tmp_path) -> None:
    from license_server.store_writer import GroupCommitStore

    store = GroupCommitStore(tmp_path / "db.sqlite")
    try:
        open_stream(store, "a")
        assert store.end_stream("a", now=START + 1, reason="x").state == "ended"
        assert store.close_stream(system="widevine", device_id="dev-a", playback_id="p", now=START, reason="") == []
    finally:
        store.close()


# ------------------------------------------------------ native refusal shapes


def write_rights(store, **tier) -> None:
    """An admin-style rights overlay (the default namespace's ``rights`` document)."""
    rights = {"tiers": {"premium": {"downloads": True, **tier}}}
    store.update_document(RIGHTS_DOCUMENT, lambda _: json.dumps(rights))


async def test_widevine_refusal_is_a_license_error_with_the_code(widevine, make_device, store) -> None:
    write_rights(store, max_streams=1)
    headers = {"X-DRM-Token": token(policy={})}
    from device_emulator.cdm.widevine import WidevineCdm

    answers = []
    for _ in range(2):
        pending = WidevineCdm(make_device("L1")).build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=False)
        response = await widevine.client.post("/widevine/license", data=pending.body, headers=headers)
        answers.append((response.status, response.headers.get(ERROR_CODE_HEADER), await response.read()))
    assert answers[0][0] == 200
    status, code, body = answers[1]
    assert (status, code) == (403, "STREAM_LIMIT_REACHED")
    assert codec.parse_server_reply(body).error_code == "STREAM_LIMIT_REACHED"


async def test_playready_refusal_is_a_soap_fault_with_a_real_drm_e_code(client, make_device, store) -> None:
    from device_emulator.cdm.playready import PlayReadyCdm, soap_action

    write_rights(store, max_streams=1)
    headers = {"X-DRM-Token": token(policy={}), "Content-Type": "text/xml; charset=utf-8",
               **soap_action("AcquireLicense")}
    replies = []
    for _ in range(2):
        outgoing = PlayReadyCdm(make_device("L1")).build_challenge("demo-movie", LicenseKind.TEMPORARY)
        response = await client.post("/playready/rightsmanager.asmx", data=outgoing.body, headers=headers)
        replies.append((response.status, response.headers.get(ERROR_CODE_HEADER), await response.read()))
    assert replies[0][0] == 200
    status, code, body = replies[1]
    assert (status, code) == (500, "STREAM_LIMIT_REACHED")
    assert b"0x8004c602" in body.lower() and b"DRM_E_SERVER_DEVICE_LIMIT_REACHED" in body


async def test_the_console_lists_live_streams_with_an_end_button(aiohttp_client, tmp_path, store, keyring,
                                                                 clock) -> None:
    from license_server.app import create_app
    from tests.admin_support import AUTH, admin_settings

    settings = admin_settings(tmp_path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    client = await aiohttp_client(create_app(settings, store=store, keyring=keyring, clock=clock))
    response = await client.get("/admin/console/streams", headers=AUTH)
    assert response.status == 200 and "no stream is playing" in await response.text()
    open_stream(store, "a" * 32, now=clock.now())
    html = await (await client.get("/admin/console/streams", headers=AUTH)).text()
    assert "a" * 32 in html and f'data-post="/admin/streams/{"a" * 32}/end"' in html
    assert (await client.get("/admin/console/streams")).status == 401
    listed = await (await client.get("/admin/streams", headers=AUTH)).json()
    assert listed["count"] == 1 and listed["accounts"][0]["account"] == "acct"
    ended = await client.post(f"/admin/streams/{'a' * 32}/end", headers=AUTH)
    assert ended.status == 200 and (await ended.json())["state"] == "ended"
    bad = await client.get("/admin/streams?limit=3", headers=AUTH)
    assert bad.status == 400 and bad.headers[ERROR_CODE_HEADER] == "ADMIN_REQUEST_INVALID"


# ------------------------------------------------------- the device's stream loop


class FakeBeats:
    """A dialect driver whose heartbeats fail as scripted, on a device whose clock the loop moves."""

    def __init__(self, outcomes: list[str | None], policy: dict) -> None:
        from types import SimpleNamespace

        self.device = SimpleNamespace(clock=START, now=lambda: self.device.clock)
        self.system, self.content_id, self.license_id, self.policy = "widevine", "demo-movie", "lic", policy
        self.outcomes, self.beats, self.ended = list(outcomes), [], False

    def start(self) -> None:
        self.started = self.device.clock

    def beat(self) -> None:
        from device_emulator.streaming import StreamStop

        self.beats.append(self.device.clock - START)
        code = self.outcomes.pop(0) if self.outcomes else None
        if code is not None:
            raise StreamStop(code, "scripted")

    def end(self) -> str:
        self.ended = True
        return "released"

    def state(self) -> dict:
        return {}

    def close(self) -> None:
        pass


def run_loop(outcomes: list[str | None], seconds: int, **policy):
    from device_emulator import streaming

    driver = FakeBeats(outcomes, {"license_duration": 90, **policy})

    def advance(step: int) -> None:
        driver.device.clock += max(0, step)

    timeline, stop = streaming.play_stream(driver, seconds=seconds, advance=advance)  # type: ignore[arg-type]
    return driver, timeline, stop


def test_the_loop_beats_at_the_delay_and_retries_within_recovery(monkeypatch) -> None:
    from device_emulator import streaming

    monkeypatch.setattr(streaming, "_keep", lambda *a, **k: None)  # no device directory here
    driver, timeline, stop = run_loop([], 300, renewal_delay=60)
    assert stop is None and driver.beats == [60, 120, 180, 240] and driver.ended
    driver, timeline, stop = run_loop(["INJECTED_FAULT", "TRANSPORT_ERROR", None], 200, renewal_delay=60,
                                      renewal_retry_interval=10)
    assert stop is None and driver.beats == [60, 70, 80, 140] and timeline.count("heartbeat_failed") == 2
    driver, timeline, stop = run_loop(["INJECTED_FAULT"] * 9, 300, renewal_delay=60, renewal_retry_interval=10,
                                      renewal_recovery_duration=20)
    assert stop is not None and stop.code == "INJECTED_FAULT" and driver.beats == [60, 70, 80, 90, 100]
    driver, timeline, stop = run_loop(["STREAM_EVICTED"], 300, renewal_delay=60)
    assert stop is not None and stop.code == "STREAM_EVICTED" and driver.beats == [60] and not driver.ended


def test_without_a_renewal_delay_the_heartbeat_comes_at_half_the_window() -> None:
    from device_emulator.streaming import heartbeat_interval

    assert heartbeat_interval({"renewal_delay": 0, "lease_duration": 90}, 600) == 45
    assert heartbeat_interval({"license_duration": 3600}, 600) == 1800
    assert heartbeat_interval({}, 600) == 600
