"""Unit tests of the sans-I/O W3C Clear Key codec."""

from __future__ import annotations

import base64
import json

import pytest

from license_server.core.model import Grant, Hdcp, LicenseKind, LicensePolicy, RequestKind, Robustness, Track, TrackKey
from license_server.errors import DrmError, ErrorCode
from license_server.protocols import clearkey

KID = bytes.fromhex("9d58c641af0241d95c2a2fd59c7fea28")
KEY = bytes.fromhex("f0c0611c57403c0a10cf4384be462bba")
KID_B64URL = "nVjGQa8CQdlcKi_VnH_qKA"  # contains '_': base64url, not base64


def body(doc) -> bytes:
    return json.dumps(doc).encode()


def refused(raw: bytes) -> DrmError:
    with pytest.raises(DrmError) as info:
        clearkey.parse_message(raw)
    return info.value


# ------------------------------------------------------------------ base64url

def test_b64url_encodes_without_padding_in_the_url_safe_alphabet():
    assert clearkey.b64url_encode(KID) == KID_B64URL
    assert "=" not in clearkey.b64url_encode(b"\x00")
    assert clearkey.b64url_encode(b"\xfb\xff") == "-_8"


def test_b64url_decode_round_trips():
    for data in (b"", b"\x00", b"ab", b"abc", KID, bytes(range(256))):
        assert clearkey.b64url_decode(clearkey.b64url_encode(data)) == data


@pytest.mark.parametrize("text, reason", [
    (KID_B64URL + "==", "padded"),
    ("nVjGQa8CQdlcKi/VnH/qKA", "base64url"),   # '/' is plain base64
    ("nVjGQa8CQdlcKi+VnH+qKA", "base64url"),
    ("nVjGQa8CQdlcKi VnH_qKA", "base64url"),
    ("nVjGQa8CQdlcKi_VnH_qKB", "canonical"),   # non-zero trailing bits
    ("A", "length"),
])
def test_b64url_decode_is_strict(text, reason):
    with pytest.raises(ValueError, match=reason):
        clearkey.b64url_decode(text)


# ------------------------------------------------------------------- parsing

def test_parses_a_temporary_license_request():
    message = clearkey.parse_message(body({"kids": [KID_B64URL], "type": "temporary"}))
    assert message == clearkey.LicenseRequest((KID,), clearkey.SessionType.TEMPORARY)


def test_parses_a_persistent_license_request_and_ignores_unknown_members():
    message = clearkey.parse_message(body({"kids": [KID_B64URL], "type": "persistent-license", "x": 1}))
    assert message.session_type is clearkey.SessionType.PERSISTENT_LICENSE
    assert message.session_type.license_kind is LicenseKind.PERSISTENT


def test_duplicate_kids_are_requested_once():
    message = clearkey.parse_message(body({"kids": [KID_B64URL, KID_B64URL], "type": "temporary"}))
    assert message.kids == (KID,)


def test_a_message_without_type_is_a_release():
    assert clearkey.parse_message(body({"kids": [KID_B64URL]})) == clearkey.ReleaseRequest((KID,))


@pytest.mark.parametrize("raw", [
    b"", b"{", b"not json", b"[]", b'"kids"', b"\xff\xfe{}", b"[" * 100_00 + b"]" * 100_00,
    body({}), body({"kids": "abc", "type": "temporary"}), body({"kids": [], "type": "temporary"}),
    body({"kids": [7], "type": "temporary"}), body({"kids": [KID_B64URL], "type": 1}),
])
def test_malformed_bodies_are_refused(raw):
    assert refused(raw).code is ErrorCode.MALFORMED_CHALLENGE


def test_padded_kid_is_refused():
    error = refused(body({"kids": [KID_B64URL + "=="], "type": "temporary"}))
    assert error.code is ErrorCode.MALFORMED_CHALLENGE and "padded" in error.message


def test_plain_base64_kid_is_refused():
    standard = base64.b64encode(bytes.fromhex("fbff" * 8)).decode().rstrip("=")
    assert "+" in standard or "/" in standard
    assert refused(body({"kids": [standard], "type": "temporary"})).code is ErrorCode.MALFORMED_CHALLENGE


@pytest.mark.parametrize("size", [8, 15, 17, 32])
def test_kids_must_be_16_bytes(size):
    error = refused(body({"kids": [clearkey.b64url_encode(b"k" * size)], "type": "temporary"}))
    assert error.code is ErrorCode.MALFORMED_CHALLENGE and "16 bytes" in error.message


@pytest.mark.parametrize("kind", ["persistent-usage-record", "Temporary", "offline", ""])
def test_unknown_session_types_are_unsupported(kind):
    assert refused(body({"kids": [KID_B64URL], "type": kind})).code is ErrorCode.UNSUPPORTED_REQUEST


def test_too_many_kids_and_too_large_bodies_are_refused():
    many = [clearkey.b64url_encode(i.to_bytes(16, "big")) for i in range(clearkey.MAX_KIDS + 1)]
    assert refused(body({"kids": many, "type": "temporary"})).code is ErrorCode.CHALLENGE_TOO_LARGE
    assert refused(b" " * (clearkey.MAX_MESSAGE_BYTES + 1)).code is ErrorCode.CHALLENGE_TOO_LARGE


def test_to_challenge_is_anonymous_and_has_no_request_id():
    message = clearkey.parse_message(body({"kids": [KID_B64URL], "type": "persistent-license"}))
    challenge = clearkey.to_challenge(message, request_time=123)
    assert challenge.system == "clearkey" and challenge.device is None and challenge.request_time == 123
    assert challenge.kind is RequestKind.NEW and challenge.license_kind is LicenseKind.PERSISTENT
    assert challenge.key_ids == (KID,) and challenge.request_id is None and challenge.content_id is None


# ------------------------------------------------------------------ building

def grant() -> Grant:
    return Grant(
        license_id="l1", content_id="demo-movie", kind=LicenseKind.TEMPORARY,
        keys=(TrackKey(KID, KEY, Track.SD, Robustness.SW_SECURE_CRYPTO, Hdcp.NONE),),
        policy=LicensePolicy(), issued_at=0, device=None,
    )


def test_build_license_is_a_jwk_set_without_padding():
    raw = clearkey.build_license(grant(), clearkey.SessionType.TEMPORARY)
    doc = json.loads(raw)
    assert doc == {"keys": [{"kty": "oct", "kid": KID_B64URL, "k": clearkey.b64url_encode(KEY)}], "type": "temporary"}
    assert b"=" not in raw
    assert clearkey.parse_license(raw) == {KID: KEY}


def test_release_and_acknowledgement_shapes():
    assert json.loads(clearkey.build_release([KID])) == {"kids": [KID_B64URL]}
    assert json.loads(clearkey.build_release_ack((KID,))) == {"kids": [KID_B64URL]}
    assert json.loads(clearkey.build_license_request([KID], clearkey.SessionType.PERSISTENT_LICENSE)) == {
        "kids": [KID_B64URL], "type": "persistent-license"}
