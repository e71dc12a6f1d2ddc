"""core/policy.py on its own: pure decisions from values, ``now`` an argument."""

from __future__ import annotations

import pytest

from license_server.core import policy
from license_server.core.model import (
    Hdcp,
    LicenseChallenge,
    LicenseKind,
    LicensePolicy,
    PlatformVerification,
    RequestKind,
    Robustness,
    SecurityLevel,
    Track,
    VerifiedDevice,
)
from license_server.core.policy import PolicyOverrides, TrackRequirement
from license_server.errors import DrmError, ErrorCode
from license_server.keyring import Title, TrackEntry

NOW = 1_800_000_000
KIDS = {track: bytes([n]) * 16 for n, track in enumerate(Track, start=1)}
TITLE = Title("movie", "Movie", tuple(TrackEntry(track, kid, b"k" * 16) for track, kid in KIDS.items()))


def device(level: SecurityLevel = SecurityLevel.L1, hdcp: Hdcp = Hdcp.V2_2) -> VerifiedDevice:
    verification = (PlatformVerification.HARDWARE_VERIFIED if level is SecurityLevel.L1
                    else PlatformVerification.SOFTWARE_VERIFIED)
    return VerifiedDevice("d1", 4464, "model", level, verification, hdcp, b"pub")


def challenge(kind: LicenseKind = LicenseKind.TEMPORARY, key_ids: tuple[bytes, ...] = ()) -> LicenseChallenge:
    return LicenseChallenge("widevine", RequestKind.NEW, kind, "movie", key_ids, b"r" * 16, NOW, None)


def decide(request: LicenseChallenge, dev: VerifiedDevice | None, overrides: PolicyOverrides = PolicyOverrides()):
    return policy.decide(request, dev, TITLE, overrides=overrides, license_id="ab" * 8, now=NOW)


def tracks(grant) -> set[Track]:
    return {key.track for key in grant.keys}


def test_an_l1_device_with_hdcp_2_2_gets_every_track_and_the_temporary_defaults():
    grant = decide(challenge(), device())
    assert tracks(grant) == set(Track)
    assert grant.kind is LicenseKind.TEMPORARY and grant.policy == policy.TEMPORARY_DEFAULTS
    assert grant.issued_at == NOW and grant.content_id == "movie"


def test_an_l3_device_gets_software_tracks_only():
    grant = decide(challenge(), device(SecurityLevel.L3))
    assert tracks(grant) == {Track.AUDIO, Track.SD}
    assert all(key.robustness is Robustness.SW_SECURE_CRYPTO for key in grant.keys)


def test_hdcp_below_a_track_requirement_drops_the_track():
    assert Track.UHD1 not in tracks(decide(challenge(), device(hdcp=Hdcp.V1)))
    assert tracks(decide(challenge(), device(hdcp=Hdcp.NONE))) == {Track.AUDIO, Track.SD}


def test_persistent_licenses_need_l1_unless_the_override_lowers_the_level():
    with pytest.raises(DrmError) as caught:
        decide(challenge(LicenseKind.PERSISTENT), device(SecurityLevel.L3))
    assert caught.value.code is ErrorCode.SECURITY_LEVEL_TOO_LOW
    grant = decide(challenge(LicenseKind.PERSISTENT), device(SecurityLevel.L3),
                   PolicyOverrides(persistent_min_level=SecurityLevel.L3))
    assert grant.kind is LicenseKind.PERSISTENT and grant.policy == policy.PERSISTENT_DEFAULTS


def test_the_persist_override_wins_over_the_challenge():
    assert policy.requested_kind(challenge(), PolicyOverrides(persist=True)) is LicenseKind.PERSISTENT
    assert policy.requested_kind(challenge(LicenseKind.PERSISTENT), PolicyOverrides(persist=False)) \
        is LicenseKind.TEMPORARY
    assert policy.requested_kind(challenge(), PolicyOverrides()) is LicenseKind.TEMPORARY


def test_a_lease_with_a_persistent_license_is_refused():
    with pytest.raises(DrmError) as caught:
        decide(challenge(LicenseKind.PERSISTENT), device(), PolicyOverrides(lease_duration=60))
    assert caught.value.code is ErrorCode.LEASE_WITH_OFFLINE


def test_requested_key_ids_select_tracks_and_unknown_ones_are_refused():
    assert tracks(decide(challenge(key_ids=(KIDS[Track.HD],)), device())) == {Track.HD}
    with pytest.raises(DrmError) as caught:
        decide(challenge(key_ids=(b"\xee" * 16,)), device())
    assert caught.value.code is ErrorCode.KEY_NOT_FOUND


def test_no_allowed_track_is_a_refusal():
    with pytest.raises(DrmError) as caught:
        decide(challenge(key_ids=(KIDS[Track.UHD1],)), device(SecurityLevel.L3))
    assert caught.value.code is ErrorCode.SECURITY_LEVEL_TOO_LOW


def test_allowed_tracks_and_track_requirement_overrides():
    audio_only = PolicyOverrides(allowed_tracks=frozenset({Track.AUDIO}))
    assert tracks(decide(challenge(), device(), audio_only)) == {Track.AUDIO}
    hardware_sd = PolicyOverrides(
        track_requirements=((Track.SD, TrackRequirement(Robustness.HW_SECURE_ALL, Hdcp.NONE)),))
    both = challenge(key_ids=(KIDS[Track.AUDIO], KIDS[Track.SD]))
    assert tracks(decide(both, device(SecurityLevel.L3), hardware_sd)) == {Track.AUDIO}
    assert tracks(decide(both, device(SecurityLevel.L1), hardware_sd)) == {Track.AUDIO, Track.SD}


def test_no_device_means_no_device_filtering():
    assert tracks(decide(challenge(), None)) == set(Track)


def test_overrides_apply_only_what_they_set():
    changed = PolicyOverrides(rental_duration=10, can_renew=True).apply(policy.PERSISTENT_DEFAULTS, NOW)
    assert changed.rental_duration == 10 and changed.can_renew
    assert changed.playback_duration == policy.PERSISTENT_DEFAULTS.playback_duration


def test_the_one_deadline_rule_is_min_of_the_non_zero_rental_and_license_durations():
    assert LicensePolicy().deadline(100) is None
    assert LicensePolicy(rental_duration=50).deadline(100) == 150
    assert LicensePolicy(rental_duration=50, license_duration=20).deadline(100) == 120
    assert LicensePolicy(license_duration=20).deadline(100) == 120


def test_the_policy_round_trips_through_its_stored_form():
    terms = LicensePolicy(can_persist=True, rental_duration=5, playback_duration=7)
    assert LicensePolicy.from_dict(terms.as_dict()) == terms
    assert LicensePolicy.from_dict({"rental_duration": 5, "from_a_newer_server": 1}) == LicensePolicy(rental_duration=5)
    assert terms["rental_duration"] == 5
    with pytest.raises(KeyError):
        terms["nope"]
