"""The device's Widevine-style CDM: builds challenges, verifies and loads licenses.

It uses the same codec as the server (``license_server.protocols.widevine``),
so the two can never disagree on the format. Network I/O lives elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from device_emulator.cdm.base import Cdm, Link, Persisted
from device_emulator.device import Device
from device_emulator.errors import CdmError, TeeError
from license_server import crypto
from license_server.core.model import LicenseKind, RequestKind, SecurityLevel
from license_server.errors import DrmError
from license_server.protocols.common import attestation_nonce
from license_server.protocols.widevine import codec
from license_server.protocols.widevine import license_protocol_pb2 as pb
from license_server.protocols.widevine.certificates import CertificateError, CertType, verify_chain

__all__ = ["CdmError", "LoadedLicense", "PendingRequest", "SYSTEM", "WidevineCdm"]

SYSTEM = codec.SYSTEM
_KIND_TO_WIRE = {LicenseKind.TEMPORARY: pb.STREAMING, LicenseKind.PERSISTENT: pb.OFFLINE}
_VERIFICATION_NAMES = {
    pb.PLATFORM_HARDWARE_VERIFIED: "HARDWARE_VERIFIED",
    pb.PLATFORM_SOFTWARE_VERIFIED: "SOFTWARE_VERIFIED",
    pb.PLATFORM_TAMPERED: "TAMPERED",
    pb.PLATFORM_UNVERIFIED: "UNVERIFIED",
}


@dataclass(frozen=True)
class PendingRequest:
    """A challenge that was sent and awaits its license."""

    body: bytes
    request_msg: bytes
    request_id: bytes
    kind: LicenseKind
    content_id: str


@dataclass(frozen=True)
class LoadedLicense:
    handle: int
    license: pb.License = field(repr=False)
    request_msg: bytes = field(repr=False)
    license_msg: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    wrapped_session_key: bytes = field(repr=False)

    @property
    def license_id(self) -> str:
        return self.license.id.session_id.hex()

    @property
    def kind(self) -> LicenseKind:
        return LicenseKind.PERSISTENT if self.license.id.type == pb.OFFLINE else LicenseKind.TEMPORARY

    @property
    def platform_verification(self) -> str:
        return _VERIFICATION_NAMES.get(self.license.platform_verification_status, "UNVERIFIED")

    def policy(self) -> dict:
        p = self.license.policy
        return {
            "can_play": p.can_play, "can_persist": p.can_persist, "can_renew": p.can_renew,
            "rental_duration": p.rental_duration_seconds, "playback_duration": p.playback_duration_seconds,
            "license_duration": p.license_duration_seconds,
            "renewal_recovery_duration": p.renewal_recovery_duration_seconds,
            "renewal_delay": p.renewal_delay_seconds, "renewal_retry_interval": p.renewal_retry_interval_seconds,
            "play_start_grace_period": p.play_start_grace_period_seconds,
            "soft_enforce_playback": p.soft_enforce_playback_duration,
            "soft_enforce_rental": p.soft_enforce_rental_duration,
            "renewal_server_url": p.renewal_server_url, "renew_with_usage": p.renew_with_usage,
        }


class WidevineCdm(Cdm):
    system = SYSTEM
    renewable = True

    def __init__(self, device: Device) -> None:
        super().__init__(device)
        self._cert_path = device.directory / "trust" / "widevine_service.bin"
        self._privacy = True

    @property
    def holder(self):
        return self.device.tee

    def prepare(self, link: Link, *, privacy: bool = True) -> None:
        """With privacy, fetch and verify the service certificate once (the client id is encrypted to it)."""
        self._privacy = privacy
        if privacy and self.service_certificate is None:
            self.accept_service_certificate(link.post(self.service_certificate_request()).body)

    def persisted(self, pending: PendingRequest, loaded: LoadedLicense) -> Persisted:
        return Persisted(loaded.license.id.version, loaded.request_msg, loaded.license_msg, loaded.signature,
                         loaded.wrapped_session_key, loaded.license.license_start_time)

    # ---------------------------------------------------- service certificate

    @property
    def service_certificate(self) -> bytes | None:
        return self._cert_path.read_bytes() if self._cert_path.exists() else None

    def service_certificate_request(self) -> bytes:
        return codec.SERVICE_CERTIFICATE_REQUEST

    def accept_service_certificate(self, reply: bytes) -> None:
        """Verify the server's service certificate against our root and cache it."""
        parsed = self._reply(reply)
        if parsed.type != pb.SignedMessage.SERVICE_CERTIFICATE:
            raise CdmError("UNEXPECTED_REPLY", "the server did not answer with a service certificate")
        signed_root = pb.SignedDrmCertificate.FromString(self.device.trusted_root)
        root = pb.DrmCertificate.FromString(signed_root.drm_certificate)
        try:
            info = verify_chain(parsed.msg, root.public_key, now=self.device.now())
        except CertificateError as exc:
            raise CdmError("SERVICE_CERTIFICATE_INVALID", str(exc)) from exc
        if info.type != CertType.SERVICE:
            raise CdmError("SERVICE_CERTIFICATE_INVALID", "the certificate is not a SERVICE certificate")
        self._cert_path.write_bytes(parsed.msg)

    # -------------------------------------------------------------- challenge

    def build_challenge(self, content_id: str, kind: LicenseKind, *, key_ids: tuple[bytes, ...] = (),
                        privacy: bool | None = None) -> PendingRequest:
        """A signed challenge; the client id is encrypted to the cached service certificate unless
        ``privacy`` is False (default: what :meth:`prepare` was told, else True)."""
        privacy = self._privacy if privacy is None else privacy
        now = self.device.now()
        request_id = crypto.random_bytes(16)
        client = self.client_identification()
        client.attestation.CopyFrom(self._evidence(request_id, now))
        request = pb.LicenseRequest(type=pb.LicenseRequest.NEW, request_time=now,
                                    protocol_version=pb.VERSION_2_1,
                                    key_control_nonce=int.from_bytes(crypto.random_bytes(4), "big"))
        pssh = request.content_id.widevine_pssh_data
        pssh.pssh_data.append(codec.pssh_data(content_id, key_ids))
        pssh.license_type = _KIND_TO_WIRE[kind]
        pssh.request_id = request_id
        service_cert = self.service_certificate if privacy else None
        if service_cert:
            request.encrypted_client_id.CopyFrom(codec.encrypt_client_id(client, service_cert))
        else:
            request.client_id.CopyFrom(client)
        msg = request.SerializeToString()
        body = codec.sign_message(msg, self.device.tee.sign(msg))
        return PendingRequest(body, msg, request_id, kind, content_id)

    def client_identification(self) -> pb.ClientIdentification:
        """The device's client id (certificate chain, client info, capabilities), without evidence."""
        client = pb.ClientIdentification(type=pb.ClientIdentification.DRM_DEVICE_CERTIFICATE,
                                         token=self.device.certificate_chain)
        client.client_info.add(name="company_name", value="drm-license-emulator")
        client.client_info.add(name="model_name", value=self.device.record.model)
        client.client_info.add(name="security_level", value=self.device.level.value)
        hdcp = pb.ClientIdentification.ClientCapabilities.HdcpVersion.ValueType(self.device.record.max_hdcp)
        client.client_capabilities.max_hdcp_version = hdcp
        client.client_capabilities.oem_crypto_api_version = 18 if self.device.level is SecurityLevel.L1 else 0
        return client

    def _evidence(self, request_id: bytes, now: int) -> pb.AttestationEvidence:
        """On L1 the TEE reports the root of trust; on L3 these are software claims."""
        record = self.device.record
        flags = record.flags
        evidence = pb.AttestationEvidence(
            verified_boot_state=(pb.AttestationEvidence.SELF_SIGNED if flags.bootloader_unlocked
                                 else pb.AttestationEvidence.VERIFIED),
            bootloader_locked=not flags.bootloader_unlocked,
            app_package=record.app_package,
            app_signing_digest=bytes.fromhex(record.app_signing_digest),
            app_recognized=not flags.tampered_app,
            nonce=attestation_nonce(request_id),
            timestamp=now,
            os_patch_level=record.os_patch_level,
            source=(pb.AttestationEvidence.TRUSTED_ENVIRONMENT if self.device.tee.hardware_backed
                    else pb.AttestationEvidence.SOFTWARE),
        )
        if flags.rooted:
            evidence.root_indicators.extend(["su_binary", "magisk"])
        return evidence

    # ---------------------------------------------------------------- license

    def process_license(self, pending: PendingRequest, reply: bytes) -> LoadedLicense:
        """Verify the license (signature, binding, request id) and load its keys into the TEE."""
        parsed = self._reply(reply)
        if parsed.type != pb.SignedMessage.LICENSE or not parsed.session_key:
            raise CdmError("UNEXPECTED_REPLY", "the server did not answer with a new license")
        return self.load(pending.request_msg, parsed.session_key, parsed.msg, parsed.signature,
                         expected_request_id=pending.request_id)

    def load(self, request_msg: bytes, wrapped_session_key: bytes, license_msg: bytes, signature: bytes,
             *, expected_request_id: bytes | None = None) -> LoadedLicense:
        """Load a (possibly stored) license into the TEE, verifying it on the way."""
        try:
            handle, lic = self.device.tee.load_license(request_msg, wrapped_session_key, license_msg, signature)
        except TeeError as exc:
            raise CdmError(exc.code, exc.message) from exc
        if expected_request_id is not None and lic.id.request_id != expected_request_id:
            self.device.tee.close(handle)
            raise CdmError("LICENSE_MISMATCH", "the license answers another request")
        return LoadedLicense(handle, lic, request_msg, license_msg, signature, wrapped_session_key)

    def load_stored(self, stored) -> LoadedLicense:
        """Load a stored license (and its verified renewal, if any) into the TEE."""
        loaded = self.load(stored.request_msg, stored.wrapped_session_key, stored.license_msg, stored.signature)
        if stored.renewal_msg:
            renewed = self._verified_renewal(loaded, stored.renewal_msg, stored.renewal_signature or b"")
            loaded = replace(loaded, license=renewed)
        return loaded

    # ---------------------------------------------------- renewal and release

    def build_renewal(self, loaded: LoadedLicense, *, seconds_since_started: int) -> bytes:
        return self._existing_request(loaded, RequestKind.RENEWAL, seconds_since_started)

    def build_release(self, loaded: LoadedLicense, *, seconds_since_started: int = 0) -> bytes:
        return self._existing_request(loaded, RequestKind.RELEASE, seconds_since_started)

    def _existing_request(self, loaded: LoadedLicense, kind: RequestKind, seconds_since_started: int) -> bytes:
        msg = codec.existing_license_request(loaded.license.id, kind, request_time=self.device.now(),
                                             seconds_since_started=max(0, seconds_since_started),
                                             key_control_nonce=int.from_bytes(crypto.random_bytes(4), "big"))
        return codec.sign_message(msg, self.device.tee.sign_with_client_mac(loaded.handle, msg))

    def process_renewal(self, loaded: LoadedLicense, reply: bytes) -> tuple[LoadedLicense, bytes, bytes]:
        """Verify a renewal; return the renewed license with its message and signature.

        The caller applies it only if its version is higher than the one it holds.
        """
        parsed = self._reply(reply)
        if parsed.type != pb.SignedMessage.LICENSE:
            raise CdmError("UNEXPECTED_REPLY", "the server did not answer with a license")
        renewed = self._verified_renewal(loaded, parsed.msg, parsed.signature)
        return replace(loaded, license=renewed), parsed.msg, parsed.signature

    def _verified_renewal(self, loaded: LoadedLicense, msg: bytes, signature: bytes) -> pb.License:
        try:
            renewed = self.device.tee.apply_renewal(loaded.handle, msg, signature)
        except TeeError as exc:
            raise CdmError(exc.code, exc.message) from exc
        if renewed.id.session_id != loaded.license.id.session_id:
            raise CdmError("LICENSE_MISMATCH", "the renewal is for another license")
        return renewed

    def release_acknowledged(self, ack_verifier: bytes, license_id: str, reply: bytes) -> bool:
        """True if ``reply`` is the server's signed acknowledgement of releasing ``license_id``."""
        parsed = self._reply(reply)
        if parsed.type != pb.SignedMessage.LICENSE:
            return False
        if not self.device.tee.verify_sealed_mac(ack_verifier, parsed.msg, parsed.signature):
            return False
        return codec.decode_license(parsed.msg).id.session_id.hex() == license_id

    @staticmethod
    def _reply(body: bytes) -> codec.ServerReply:
        try:
            reply = codec.parse_server_reply(body)
        except DrmError as exc:
            raise CdmError("MALFORMED_REPLY", exc.message) from exc
        if reply.error_code:
            raise CdmError(reply.error_code, reply.error_message or "refused by the server")
        return reply
