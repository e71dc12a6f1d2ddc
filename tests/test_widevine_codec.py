"""Unit tests of the Widevine-style codec: field numbering, parsing, refusals."""

import pytest

from license_server.errors import DrmError, ErrorCode
from license_server.protocols.widevine import codec
from license_server.protocols.widevine import license_protocol_pb2 as pb


def field_number(message, name: str) -> int:
    return message.DESCRIPTOR.fields_by_name[name].number


def test_public_field_numbers_and_enum_values():
    signed = ("type", "msg", "signature", "session_key", "remote_attestation")
    assert [field_number(pb.SignedMessage, n) for n in signed] == [1, 2, 3, 4, 5]
    request = ("client_id", "content_id", "type", "request_time", "protocol_version", "key_control_nonce",
               "encrypted_client_id")
    assert [field_number(pb.LicenseRequest, n) for n in request] == [1, 2, 3, 4, 6, 7, 8]
    policy = pb.License.Policy
    names = ["can_play", "can_persist", "can_renew", "rental_duration_seconds", "playback_duration_seconds",
             "license_duration_seconds", "renewal_recovery_duration_seconds", "renewal_server_url",
             "renewal_delay_seconds", "renewal_retry_interval_seconds", "renew_with_usage",
             "always_include_client_id", "play_start_grace_period_seconds", "soft_enforce_playback_duration",
             "soft_enforce_rental_duration"]
    assert [field_number(policy, n) for n in names] == list(range(1, 16))
    assert [field_number(pb.WidevinePsshData, n) for n in ("key_ids", "content_id", "protection_scheme")] == [2, 4, 9]
    assert pb.SignedMessage.SERVICE_CERTIFICATE_REQUEST == 4 and pb.SignedMessage.ERROR_RESPONSE == 3
    assert pb.License.KeyContainer.HW_SECURE_ALL == 5
    assert pb.License.KeyContainer.OutputProtection.HDCP_V2_2 == 4
    assert pb.LicenseError.REVOKED_DRM_DEVICE_CERTIFICATE == 2


def test_service_certificate_request_is_08_04():
    assert codec.SERVICE_CERTIFICATE_REQUEST == b"\x08\x04"
    assert codec.is_service_certificate_request(b"\x08\x04")
    assert pb.SignedMessage(type=pb.SignedMessage.SERVICE_CERTIFICATE_REQUEST).SerializeToString() == b"\x08\x04"
    assert not codec.is_service_certificate_request(b"\x08\x01")
    assert not codec.is_service_certificate_request(b"\xff\xff")


def test_pssh_data_round_trip():
    kid = bytes(range(16))
    data = codec.pssh_data("demo-movie", (kid,), protection_scheme=0x63656E63)
    parsed = pb.WidevinePsshData.FromString(data)
    assert parsed.content_id == b"demo-movie" and list(parsed.key_ids) == [kid]
    assert parsed.protection_scheme == 0x63656E63  # 'cenc'


@pytest.mark.parametrize("body", [
    b"",
    b"\xff" * 40,
    b"\x08\x01",  # a LICENSE_REQUEST with no msg
    pb.SignedMessage(type=pb.SignedMessage.LICENSE, msg=b"x", signature=b"y").SerializeToString(),
    pb.SignedMessage(type=pb.SignedMessage.LICENSE_REQUEST, msg=b"\xff\xff\xff", signature=b"y").SerializeToString(),
    pb.SignedMessage(type=pb.SignedMessage.LICENSE_REQUEST,
                     msg=pb.LicenseRequest(type=pb.LicenseRequest.NEW).SerializeToString(),
                     signature=b"y").SerializeToString(),
])
def test_malformed_requests_are_refused_with_a_stable_code(body):
    with pytest.raises(DrmError) as caught:
        codec.parse_license_request(body, service_key_pem=b"")
    assert caught.value.code is ErrorCode.MALFORMED_CHALLENGE


def test_oversized_request_is_refused():
    with pytest.raises(DrmError) as caught:
        codec.parse_license_request(b"\x00" * (codec.MAX_MESSAGE_BYTES + 1), service_key_pem=b"")
    assert caught.value.code is ErrorCode.CHALLENGE_TOO_LARGE


def test_error_response_carries_real_and_stable_codes():
    body = codec.build_error(DrmError(ErrorCode.DEVICE_REVOKED, "gone"))
    reply = codec.parse_server_reply(body)
    assert reply.type == pb.SignedMessage.ERROR_RESPONSE
    assert reply.error_code == "DEVICE_REVOKED" and reply.error_message == "gone"
    err = pb.LicenseError.FromString(pb.SignedMessage.FromString(body).msg)
    assert err.error_code == pb.LicenseError.REVOKED_DRM_DEVICE_CERTIFICATE


@pytest.mark.parametrize("code, public", [
    (ErrorCode.CERTIFICATE_INVALID, pb.LicenseError.INVALID_DRM_DEVICE_CERTIFICATE),
    (ErrorCode.SIGNATURE_INVALID, pb.LicenseError.INVALID_DRM_DEVICE_CERTIFICATE),
    (ErrorCode.DEVICE_REVOKED, pb.LicenseError.REVOKED_DRM_DEVICE_CERTIFICATE),
    (ErrorCode.INTERNAL_ERROR, pb.LicenseError.SERVICE_UNAVAILABLE),
    (ErrorCode.INJECTED_FAULT, pb.LicenseError.SERVICE_UNAVAILABLE),
    (ErrorCode.ATTESTATION_REQUIRED, None),
])
def test_errors_carry_the_public_license_error_value_where_one_fits(code, public):
    msg = pb.SignedMessage.FromString(codec.build_error(DrmError(code))).msg
    err = pb.LicenseError.FromString(msg)
    assert err.emulator_error_code == code.value
    if public is None:
        assert not err.HasField("error_code")
    else:
        assert err.error_code == public and msg[:2] == bytes([0x08, public])  # field 1 first: any schema reads it


def test_pssh_box_layout():
    box = codec.pssh_box("demo-movie", (b"\x01" * 16,))
    assert box[4:8] == b"pssh" and int.from_bytes(box[:4], "big") == len(box) and box[8:12] == b"\x00" * 4
    assert box[12:28] == codec.SYSTEM_ID
    data = pb.WidevinePsshData.FromString(box[32:])
    assert data.content_id == b"demo-movie" and list(data.key_ids) == [b"\x01" * 16]


def test_schema_is_namespaced_and_has_no_runtime_version_pin():
    from pathlib import Path

    assert pb.DESCRIPTOR.name == "drm_license_emulator/widevine/license_protocol.proto"
    assert pb.DESCRIPTOR.package == "drm_license_emulator.widevine"
    assert "ValidateProtobufRuntimeVersion" not in Path(pb.__file__).read_text(encoding="utf-8")


def test_schema_loads_beside_another_license_protocol_proto():
    """Another module (pywidevine's, for one) registering ``license_protocol.proto`` first must not clash."""
    import subprocess
    import sys

    program = (
        "from google.protobuf import descriptor_pb2, descriptor_pool\n"
        "other = descriptor_pb2.FileDescriptorProto(name='license_protocol.proto', package='someone_else')\n"
        "other.message_type.add(name='License')\n"
        "descriptor_pool.Default().Add(other)\n"
        "from license_server.protocols.widevine import license_protocol_pb2 as pb\n"
        "print(pb.License.DESCRIPTOR.full_name)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "drm_license_emulator.widevine.License"
