"""Pure lifecycle pieces: the server transition table, cfg overrides, the two clocks, messages."""

import pytest

from device_emulator import player
from license_server.core import lifecycle
from license_server.core.lifecycle import Event, State
from license_server.errors import DrmError, ErrorCode
from license_server.protocols.cfg import OVERRIDE_KEYS as KEYS
from license_server.protocols.cfg import parse_overrides as overrides_from_query

DAY, HOUR = 86400, 3600
POLICY = {"can_play": True, "rental_duration": 30 * DAY, "playback_duration": 48 * HOUR, "license_duration": 0}


def test_every_legal_transition_and_every_illegal_one():
    for state in State:
        for event in Event:
            if (state, event) in lifecycle.TRANSITIONS:
                assert lifecycle.transition(state, event) in State
            else:
                with pytest.raises(DrmError) as caught:
                    lifecycle.transition(state, event)
                expected = {State.RELEASED: ErrorCode.LICENSE_RELEASED, State.EXPIRED: ErrorCode.LICENSE_EXPIRED}
                assert caught.value.code is expected[state]


def test_release_is_idempotent_and_expiry_is_time_driven():
    assert lifecycle.transition(State.RELEASED, Event.RELEASE) is State.RELEASED
    assert lifecycle.current_state(State.ISSUED, POLICY, 0, 30 * DAY - 1) is State.ISSUED
    assert lifecycle.current_state(State.ISSUED, POLICY, 0, 30 * DAY) is State.EXPIRED
    recovering = {**POLICY, "renewal_recovery_duration": HOUR}
    assert lifecycle.current_state(State.RENEWED, recovering, 0, 30 * DAY + 10) is State.RENEWED


def test_cfg_overrides_parse_every_documented_key():
    cfg = "(persist:true,rental:2592000,playback:172800,renew:true,renewdelay:3600)"
    overrides = overrides_from_query({"cfg": cfg})
    assert overrides.persist is True and overrides.rental_duration == 2592000
    assert overrides.playback_duration == 172800 and overrides.can_renew and overrides.renewal_delay == 3600
    assert set(KEYS) >= {"persist", "rental", "playback", "license", "renew", "renewdelay", "renewretry",
                         "renewrecovery", "grace", "softplayback", "softrental", "persistlevel", "attestation"}


@pytest.mark.parametrize("cfg, key", [
    ("(bogus:1)", "bogus"), ("(rental:ten)", "rental"), ("(persist:maybe)", "persist"),
    ("(rental:1)(rental:2)", None), ("rental:1", None), ("(persistlevel:L2)", "persistlevel"),
])
def test_cfg_errors_name_the_offending_key(cfg, key):
    with pytest.raises(DrmError) as caught:
        overrides_from_query({"cfg": cfg})
    assert caught.value.code is ErrorCode.INVALID_POLICY_OVERRIDE
    if key:
        assert repr(key) in caught.value.message


def decide(now, first_play=None, policy=POLICY):
    return player.decide(policy, license_start=0, first_played_at=first_play, now=now, kids=["k1"])


def test_storage_window_governs_before_first_play():
    assert decide(29 * DAY + 23 * HOUR).decision == "play"
    refused = decide(30 * DAY)
    assert refused.decision == "refused" and refused.governing_clock == "storage"
    assert refused.reason == "STORAGE_WINDOW_EXPIRED" and refused.key_statuses == {"k1": "expired"}


def test_playback_window_from_first_play_wins_when_earlier():
    first = 19 * DAY
    assert decide(first + 47 * HOUR, first).decision == "play"
    refused = decide(first + 48 * HOUR, first)
    assert refused.governing_clock == "playback" and refused.reason == "PLAYBACK_WINDOW_EXPIRED"
    late = 29 * DAY  # playback window would end after the storage window: storage wins
    assert decide(30 * DAY, late).governing_clock == "storage"


def test_viewer_messages_round_down_with_correct_plurals():
    assert decide(DAY + 60).message == "Available for 28 more days"
    assert decide(60).message == "Available for 29 more days"
    assert decide(60, 60).message == "Expires in 48 hours"
    assert decide(120, 60).message == "Expires in 47 hours"
    assert decide(60 + 47 * HOUR, 60).message == "Expires in 1 hour"
    assert decide(60 + 47 * HOUR + 59 * 60, 60).message == "Expires in 1 minute"
    assert player.viewer_message(2 * DAY + 1, played=False) == "Available for 2 more days"
    assert player.viewer_message(DAY, played=False) == "Available for 24 more hours"
    assert player.viewer_message(30, played=True) == "Expires in less than a minute"


def test_not_yet_valid_and_output_restricted_statuses():
    early = player.decide(POLICY, license_start=1000, first_played_at=None, now=50, kids=["k1"])
    assert early.reason == "NOT_YET_VALID" and early.key_statuses == {"k1": "usable-in-future"}
    restricted = player.decide(POLICY, license_start=0, first_played_at=None, now=5, kids=["k1", "k2"],
                               restricted_kids=frozenset({"k2"}))
    assert restricted.decision == "play" and restricted.key_statuses == {"k1": "usable", "k2": "output-restricted"}


def test_a_device_clock_slightly_behind_the_server_still_plays_a_fresh_license():
    from device_emulator.player import CLOCK_SKEW_TOLERANCE

    policy = {"can_persist": True, "rental_duration": 30 * DAY}
    fresh = player.decide(policy, license_start=1000, first_played_at=None, now=1000 - 5, kids=["k"])
    assert fresh.decision == "play"
    future = player.decide(policy, license_start=1000, first_played_at=None,
                           now=1000 - CLOCK_SKEW_TOLERANCE - 1, kids=["k"])
    assert (future.decision, future.reason) == ("refused", "NOT_YET_VALID")
    begin = player.decide(policy, license_start=1000, first_played_at=None, now=1000, kids=["k"], not_before=1001)
    assert begin.reason == "NOT_YET_VALID"  # an explicit begin date has no tolerance
