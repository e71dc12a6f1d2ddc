"""Widevine-style message codec, shared by the server and the device emulator.

Sans-I/O: bytes in, typed values out (and back). No sockets, no storage, no
clock reads; keys and times are arguments. Malformed input raises
:class:`~license_server.errors.DrmError` with ``MALFORMED_CHALLENGE``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from license_server import crypto
from license_server.core.model import (
    DeviceClaims,
    Evidence,
    Grant,
    Hdcp,
    LicenseChallenge,
    LicenseKind,
    PlatformVerification,
    RequestKind,
)
from license_server.errors import DrmError, ErrorCode, malformed
from license_server.protocols.widevine import license_protocol_pb2 as pb

log = logging.getLogger(__name__)
STALE_SERVICE_CERTIFICATE = (
    "encrypted_client_id does not decrypt with this server's service certificate: the device encrypted it for "
    "another one, typically after the server's keys were regenerated (`license-server keys init --force`). "
    "A device made with the old keys cannot be used any more: re-provision it against the current keys "
    "(`device-emulator create NEW_DEVICE_DIR`, or remove DEVICE_DIR and create it again)")

SYSTEM = "widevine"
SYSTEM_ID = bytes.fromhex("edef8ba979d64acea3c827dcd51d21ed")
SERVICE_CERTIFICATE_REQUEST = bytes.fromhex("0804")
MAX_MESSAGE_BYTES = 64 * 1024

MessageType = pb.SignedMessage.MessageType
_REQUEST_KIND = {
    pb.LicenseRequest.NEW: RequestKind.NEW,
    pb.LicenseRequest.RENEWAL: RequestKind.RENEWAL,
    pb.LicenseRequest.RELEASE: RequestKind.RELEASE,
}
_LICENSE_KIND = {pb.STREAMING: LicenseKind.TEMPORARY, pb.OFFLINE: LicenseKind.PERSISTENT}
_WIRE_LICENSE_TYPE = {v: k for k, v in _LICENSE_KIND.items()}
_VERIFICATION = {
    PlatformVerification.HARDWARE_VERIFIED: pb.PLATFORM_HARDWARE_VERIFIED,
    PlatformVerification.SOFTWARE_VERIFIED: pb.PLATFORM_SOFTWARE_VERIFIED,
    PlatformVerification.TAMPERED: pb.PLATFORM_TAMPERED,
    PlatformVerification.UNVERIFIED: pb.PLATFORM_UNVERIFIED,
}
# The public LicenseError.Error values, where one fits (a real CDM re-provisions on INVALID and gives up on
# REVOKED); every error also carries our stable code in the extension fields and the X-DRM-Error-Code header.
_LICENSE_ERROR = {
    ErrorCode.CERTIFICATE_INVALID: pb.LicenseError.INVALID_DRM_DEVICE_CERTIFICATE,
    ErrorCode.SIGNATURE_INVALID: pb.LicenseError.INVALID_DRM_DEVICE_CERTIFICATE,
    ErrorCode.DEVICE_REVOKED: pb.LicenseError.REVOKED_DRM_DEVICE_CERTIFICATE,
    ErrorCode.INTERNAL_ERROR: pb.LicenseError.SERVICE_UNAVAILABLE,
    ErrorCode.INJECTED_FAULT: pb.LicenseError.SERVICE_UNAVAILABLE,
}


M = TypeVar("M", bound=Message)


def _parse(message_type: type[M], data: bytes, what: str) -> M:
    try:
        return message_type.FromString(data)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise malformed(f"{what} does not parse as protobuf") from exc


# ------------------------------------------------------------------ server in

@dataclass(frozen=True)
class ParsedRequest:
    """A license request with what the server needs to answer it."""

    challenge: LicenseChallenge
    request_msg: bytes  # serialized LicenseRequest; the key-derivation context
    wire_request_id: bytes
    existing: pb.LicenseIdentification | None
    seconds_since_started: int = 0


def is_service_certificate_request(body: bytes) -> bool:
    """True for ``08 04`` (a SignedMessage of type SERVICE_CERTIFICATE_REQUEST)."""
    if body == SERVICE_CERTIFICATE_REQUEST:
        return True
    try:
        signed = pb.SignedMessage.FromString(body)
    except DecodeError:
        return False
    return signed.type == MessageType.SERVICE_CERTIFICATE_REQUEST and not signed.msg


def parse_license_request(body: bytes, *, service_key_pem: bytes) -> ParsedRequest:
    """Parse a signed license request (NEW, RENEWAL or RELEASE) into neutral form."""
    if not body:
        raise malformed("empty body")
    if len(body) > MAX_MESSAGE_BYTES:
        raise DrmError(ErrorCode.CHALLENGE_TOO_LARGE, f"challenge larger than {MAX_MESSAGE_BYTES} bytes")
    signed = _parse(pb.SignedMessage, body, "SignedMessage")
    if signed.type != MessageType.LICENSE_REQUEST:
        raise malformed("SignedMessage.type is not LICENSE_REQUEST")
    if not signed.msg or not signed.signature:
        raise malformed("SignedMessage lacks msg or signature")
    request = _parse(pb.LicenseRequest, signed.msg, "LicenseRequest")
    if not request.HasField("type") or request.type not in _REQUEST_KIND:
        raise malformed("LicenseRequest.type missing")
    kind = _REQUEST_KIND[request.type]
    content = request.content_id
    variant = content.WhichOneof("content_id_variant")
    if kind is RequestKind.NEW:
        if variant != "widevine_pssh_data":
            raise malformed("a NEW request needs content_id.widevine_pssh_data")
        return _parse_new(signed, request, service_key_pem)
    if variant != "existing_license" or not content.existing_license.license_id.session_id:
        raise malformed("RENEWAL and RELEASE requests need content_id.existing_license")
    existing = content.existing_license.license_id
    license_kind = _LICENSE_KIND.get(existing.type, LicenseKind.TEMPORARY)
    challenge = LicenseChallenge(
        system=SYSTEM,
        kind=kind,
        license_kind=license_kind,
        content_id=None,
        key_ids=(),
        request_id=crypto.sha256(signed.msg)[:16],
        request_time=request.request_time,
        device=None,
        existing_license_id=existing.session_id.hex(),
        signature=signed.signature,
        signed_payload=signed.msg,
    )
    return ParsedRequest(challenge, signed.msg, existing.request_id, existing,
                         content.existing_license.seconds_since_started)


def _parse_new(signed: pb.SignedMessage, request: pb.LicenseRequest, service_key_pem: bytes) -> ParsedRequest:
    pssh = request.content_id.widevine_pssh_data
    if not pssh.pssh_data or not pssh.request_id:
        raise malformed("widevine_pssh_data needs pssh_data and request_id")
    header = _parse(pb.WidevinePsshData, pssh.pssh_data[0], "WidevinePsshData")
    try:
        content_id = header.content_id.decode("utf-8") if header.content_id else None
    except UnicodeDecodeError as exc:
        raise malformed("WidevinePsshData.content_id is not UTF-8") from exc
    if any(len(kid) != 16 for kid in header.key_ids):
        raise malformed("every key id must be 16 bytes")
    if content_id is None and not header.key_ids:
        raise malformed("WidevinePsshData names neither a content id nor key ids")
    client = _client_identification(request, service_key_pem)
    if client.type != pb.ClientIdentification.DRM_DEVICE_CERTIFICATE or not client.token:
        raise malformed("client identification must carry a DRM device certificate")
    license_kind = _LICENSE_KIND.get(pssh.license_type, LicenseKind.TEMPORARY)
    claims = DeviceClaims(
        certificate_chain=client.token,
        signed_payload=signed.msg,
        signature=signed.signature,
        evidence=_evidence(client) if client.HasField("attestation") else None,
        max_hdcp=_hdcp(client.client_capabilities.max_hdcp_version),
        client_info=tuple((nv.name, nv.value) for nv in client.client_info),
    )
    challenge = LicenseChallenge(
        system=SYSTEM,
        kind=RequestKind.NEW,
        license_kind=license_kind,
        content_id=content_id,
        key_ids=tuple(header.key_ids),
        request_id=pssh.request_id,
        request_time=request.request_time,
        device=claims,
    )
    return ParsedRequest(challenge, signed.msg, pssh.request_id, None)


def _client_identification(request: pb.LicenseRequest, service_key_pem: bytes) -> pb.ClientIdentification:
    if request.HasField("client_id"):
        return request.client_id
    if not request.HasField("encrypted_client_id"):
        raise malformed("request carries neither client_id nor encrypted_client_id")
    enc = request.encrypted_client_id
    try:
        privacy_key = crypto.rsa_oaep_unwrap(service_key_pem, enc.encrypted_privacy_key)
        plain = crypto.aes_cbc_decrypt(privacy_key, enc.encrypted_client_id_iv, enc.encrypted_client_id)
    except (crypto.CryptoError, ValueError) as exc:
        log.warning("a privacy-mode request was encrypted for service certificate %s, which this server cannot "
                    "decrypt: keys regenerated (keys init --force)? the device must be re-provisioned",
                    enc.service_certificate_serial_number.hex()[:32] or "?")
        raise malformed(STALE_SERVICE_CERTIFICATE) from exc
    return _parse(pb.ClientIdentification, plain, "ClientIdentification")


def _hdcp(value: int) -> Hdcp:
    try:
        return Hdcp(value)
    except ValueError:
        return Hdcp.NONE


def _evidence(client: pb.ClientIdentification) -> Evidence:
    ev = client.attestation
    boot = pb.AttestationEvidence.VerifiedBootState.Name(ev.verified_boot_state)
    return Evidence(
        verified_boot=boot,
        bootloader_locked=ev.bootloader_locked,
        root_indicators=tuple(ev.root_indicators),
        app_package=ev.app_package,
        app_signing_digest=ev.app_signing_digest,
        app_recognized=ev.app_recognized,
        nonce=ev.nonce,
        timestamp=ev.timestamp,
        os_patch_level=ev.os_patch_level,
        from_tee=ev.source == pb.AttestationEvidence.TRUSTED_ENVIRONMENT,
    )


# ----------------------------------------------------------------- server out

@dataclass(frozen=True)
class IssuedLicense:
    body: bytes
    keys: crypto.SessionKeys


def build_license(
    grant: Grant,
    parsed: ParsedRequest,
    *,
    device_public_key: bytes | None,
    session_keys: crypto.SessionKeys | None = None,
    renewal_server_url: str = "",
) -> IssuedLicense:
    """Build a signed LICENSE message.

    A NEW request gets a fresh session key wrapped to ``device_public_key``;
    a renewal reuses the original ``session_keys`` and carries no session key.
    """
    wrapped = b""
    if session_keys is None:
        if device_public_key is None:
            raise ValueError("a new license needs the device public key")
        session_key = crypto.random_bytes(16)
        session_keys = crypto.derive_session_keys(session_key, parsed.request_msg)
        wrapped = crypto.rsa_oaep_wrap(device_public_key, session_key)
    policy = grant.policy
    lic = pb.License(
        id=pb.LicenseIdentification(
            request_id=parsed.wire_request_id,
            session_id=bytes.fromhex(grant.license_id),
            type=_WIRE_LICENSE_TYPE[grant.kind],
            version=grant.version,
        ),
        policy=pb.License.Policy(
            can_play=policy.can_play,
            can_persist=policy.can_persist,
            can_renew=policy.can_renew,
            rental_duration_seconds=policy.rental_duration,
            playback_duration_seconds=policy.playback_duration,
            license_duration_seconds=policy.license_duration,
            renewal_recovery_duration_seconds=policy.renewal_recovery_duration,
            renewal_server_url=renewal_server_url or policy.renewal_server_url,
            renew_with_usage=policy.renew_with_usage,
            renewal_delay_seconds=policy.renewal_delay,
            renewal_retry_interval_seconds=policy.renewal_retry_interval,
            play_start_grace_period_seconds=policy.play_start_grace_period,
            soft_enforce_playback_duration=policy.soft_enforce_playback,
            soft_enforce_rental_duration=policy.soft_enforce_rental,
        ),
        license_start_time=grant.issued_at,
    )
    if grant.device is not None:
        lic.platform_verification_status = _VERIFICATION[grant.device.verification]
        lic.remote_attestation_verified = grant.device.verification is not PlatformVerification.UNVERIFIED
    for key in grant.keys:
        iv = crypto.random_bytes(16)
        container = lic.key.add(
            id=key.kid,
            iv=iv,
            key=crypto.aes_cbc_encrypt(session_keys.encryption, iv, key.key),
            type=pb.License.KeyContainer.CONTENT,
            level=int(key.robustness),
            track_label=key.track.value,
        )
        container.required_protection.hdcp = pb.License.KeyContainer.OutputProtection.HDCP.ValueType(int(key.hdcp))
    msg = lic.SerializeToString()
    signed = pb.SignedMessage(type=MessageType.LICENSE, msg=msg,
                              signature=crypto.hmac_sha256(session_keys.server_mac, msg))
    if wrapped:
        signed.session_key = wrapped
    return IssuedLicense(signed.SerializeToString(), session_keys)


def build_service_certificate(service_certificate: bytes) -> bytes:
    return pb.SignedMessage(type=MessageType.SERVICE_CERTIFICATE, msg=service_certificate).SerializeToString()


def build_error(error: DrmError) -> bytes:
    """An ERROR_RESPONSE carrying LicenseError (real code where one fits) and ours."""
    body = pb.LicenseError(emulator_error_code=error.code.value, emulator_message=error.message)
    if error.code in _LICENSE_ERROR:
        body.error_code = _LICENSE_ERROR[error.code]
    return pb.SignedMessage(type=MessageType.ERROR_RESPONSE, msg=body.SerializeToString()).SerializeToString()


# ---------------------------------------------------------- device (client) side

def pssh_data(content_id: str | None, key_ids: tuple[bytes, ...] = (), protection_scheme: int = 0) -> bytes:
    """Serialized ``WidevinePsshData`` (the data of a Widevine PSSH box)."""
    header = pb.WidevinePsshData(key_ids=list(key_ids))
    if content_id:
        header.content_id = content_id.encode()
    if protection_scheme:
        header.protection_scheme = protection_scheme
    return header.SerializeToString()


def pssh_box(content_id: str | None, key_ids: tuple[bytes, ...] = ()) -> bytes:
    """A version-0 ``pssh`` box with the Widevine system id and ``WidevinePsshData`` as its data."""
    data = pssh_data(content_id, key_ids)
    payload = b"\x00\x00\x00\x00" + SYSTEM_ID + len(data).to_bytes(4, "big") + data
    return (8 + len(payload)).to_bytes(4, "big") + b"pssh" + payload


def encrypt_client_id(client: pb.ClientIdentification, service_certificate: bytes) -> pb.EncryptedClientIdentification:
    """Privacy mode: encrypt the client id to the (already verified) service certificate."""
    signed = pb.SignedDrmCertificate.FromString(service_certificate)
    cert = pb.DrmCertificate.FromString(signed.drm_certificate)
    privacy_key = crypto.random_bytes(16)
    iv = crypto.random_bytes(16)
    return pb.EncryptedClientIdentification(
        provider_id=cert.provider_id,
        service_certificate_serial_number=cert.serial_number,
        encrypted_client_id=crypto.aes_cbc_encrypt(privacy_key, iv, client.SerializeToString()),
        encrypted_client_id_iv=iv,
        encrypted_privacy_key=crypto.rsa_oaep_wrap(cert.public_key, privacy_key),
    )


def existing_license_request(license_id: pb.LicenseIdentification, kind: RequestKind, *, request_time: int,
                             seconds_since_started: int = 0, seconds_since_last_played: int = 0,
                             key_control_nonce: int | None = None) -> bytes:
    """Serialized RENEWAL or RELEASE ``LicenseRequest`` for a license the device holds.

    ``key_control_nonce`` makes each request unique (the server keys replays on the message digest).
    """
    request = pb.LicenseRequest(
        type=pb.LicenseRequest.RENEWAL if kind is RequestKind.RENEWAL else pb.LicenseRequest.RELEASE,
        request_time=request_time, protocol_version=pb.VERSION_2_1,
    )
    if key_control_nonce is not None:
        request.key_control_nonce = key_control_nonce
    existing = request.content_id.existing_license
    existing.license_id.CopyFrom(license_id)
    existing.seconds_since_started = seconds_since_started
    existing.seconds_since_last_played = seconds_since_last_played
    return request.SerializeToString()


def session_keys_from_secrets(secrets: dict[str, str]) -> crypto.SessionKeys:
    """The MAC keys a server kept with a license (renewals carry no content keys)."""
    return crypto.SessionKeys(encryption=b"", server_mac=bytes.fromhex(secrets["server_mac"]),
                              client_mac=bytes.fromhex(secrets["client_mac"]))


def sign_message(msg: bytes, signature: bytes) -> bytes:
    return pb.SignedMessage(type=MessageType.LICENSE_REQUEST, msg=msg, signature=signature).SerializeToString()


@dataclass(frozen=True)
class ServerReply:
    """A parsed server answer, as the device sees it."""

    type: int
    msg: bytes
    signature: bytes
    session_key: bytes
    error_code: str | None = None
    error_message: str | None = None


def parse_server_reply(body: bytes) -> ServerReply:
    """Parse LICENSE, SERVICE_CERTIFICATE or ERROR_RESPONSE messages."""
    signed = _parse(pb.SignedMessage, body, "SignedMessage")
    if signed.type == MessageType.ERROR_RESPONSE:
        err = _parse(pb.LicenseError, signed.msg, "LicenseError")
        code = err.emulator_error_code
        if not code:
            code = pb.LicenseError.Error.Name(err.error_code) if err.HasField("error_code") else "UNKNOWN"
        return ServerReply(signed.type, signed.msg, b"", b"", code, err.emulator_message or None)
    if signed.type not in (MessageType.LICENSE, MessageType.SERVICE_CERTIFICATE):
        raise malformed("unexpected SignedMessage type in reply")
    return ServerReply(signed.type, signed.msg, signed.signature, signed.session_key)


def decode_license(msg: bytes) -> pb.License:
    return _parse(pb.License, msg, "License")
