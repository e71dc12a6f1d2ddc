"""The device's FairPlay-style CDM: application certificate, SPCs, CKCs, offline keys, sync.

It uses the server's sans-I/O codec (``license_server.protocols.fairplay``), so
both sides agree on the format; secrets (SPCK, SK, R1) and content keys live in
the TEE (``device.tee.fairplay_*``). Network I/O lives in ``acquire_fairplay``.

Levels: an L1 device (emulated TEE) is FairPlay *main*, an L3 device *baseline*;
a device whose ``device.json`` has ``extra.device_class == "audio"`` (or
``device_type == "audio"``) is an audio-only client and asks for audio keys only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from device_emulator.cdm.base import Cdm, Link, Outgoing, Persisted
from device_emulator.device import Device
from device_emulator.errors import CdmError, TeeError
from license_server import crypto
from license_server.core.model import Evidence, Hdcp, LicenseKind
from license_server.crypto import fairplay as fpcrypto
from license_server.protocols.common import attestation_nonce
from license_server.protocols.fairplay import ckc as fp_ckc
from license_server.protocols.fairplay import fields
from license_server.protocols.fairplay.fields import Capability, EmuCapability, SecurityLevel
from license_server.protocols.fairplay.tllv import Tag

if TYPE_CHECKING:
    from device_emulator.transport import HttpReply

SYSTEM = "fairplay"
CERTIFICATE_FILE = "fairplay_app.cert"
CERTIFICATE_PATH = "/fairplay/certificate"
SHAPES = ("raw", "form", "json")
PROTOCOL_VERSION = 1
_XML_CKC = re.compile(r"^\s*<ckc>\s*([A-Za-z0-9+/=\s]+)\s*</ckc>\s*$")


@dataclass(frozen=True)
class PendingSpc:
    body: bytes
    ref: int  # the TEE's handle on the session secrets
    seed: bytes  # anti-replay seed: the request id
    asset_id: str
    kind: LicenseKind


@dataclass(frozen=True)
class LoadedKey:
    """A CKC whose keys are loaded in the TEE (``contents`` holds no key values)."""

    handle: int
    contents: fp_ckc.CkcContents = field(repr=False)
    ckc: bytes = field(repr=False)

    @property
    def license_id(self) -> str:
        return self.contents.license_info.license_id.hex() if self.contents.license_info else ""

    @property
    def kind(self) -> LicenseKind:
        info = self.contents.license_info
        return info.kind if info else LicenseKind.TEMPORARY

    @property
    def issued_at(self) -> int:
        return self.contents.license_info.issued_at if self.contents.license_info else 0

    @property
    def platform_verification(self) -> str:
        info = self.contents.license_info
        return info.verification.value if info and info.verification else "UNVERIFIED"

    def policy(self) -> dict:
        return fp_ckc.neutral_policy(self.contents)


def decode_answer(body: bytes, content_type: str) -> bytes:
    """The CKC bytes from any answer shape: JSON, ``<ckc>`` XML, bare base64 or binary."""
    try:
        if content_type == "application/octet-stream":
            return body
        text = body.decode("ascii")
        if content_type == "application/json":
            value = json.loads(text)["ckc"]
        else:
            match = _XML_CKC.match(text)
            value = match.group(1) if match else text
        return base64.b64decode("".join(value.split()), validate=True)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CdmError("MALFORMED_REPLY", f"the answer is not a CKC in the {content_type} shape") from exc


class FairPlayCdm(Cdm):
    """``shape``: how the SPC travels (``raw`` bytes, a ``form`` or a ``json`` body, as players do)."""

    system = SYSTEM

    def __init__(self, device: Device, *, audio_only: bool | None = None, shape: str = "raw") -> None:
        super().__init__(device)
        if shape not in SHAPES:
            raise ValueError(f"unknown SPC transport shape {shape!r}; known: {', '.join(SHAPES)}")
        self.shape = shape
        self._cert_path = device.directory / "trust" / CERTIFICATE_FILE
        record = device.record
        self.audio_only = audio_only if audio_only is not None else (
            record.extra.get("device_class") == "audio" or record.device_type == "audio")
        # The SPC's media playback state: a streaming player keeps one playback id across lease renewals
        self.playback_id: int | None = None  # None: a fresh random id per SPC
        self.playback_state = fields.PlaybackState.FIRST_PLAYBACK_CK_REQUIRED

    # ---------------------------------------------------- application certificate

    @property
    def app_certificate(self) -> bytes | None:
        return self._cert_path.read_bytes() if self._cert_path.exists() else None

    def accept_certificate(self, body: bytes) -> None:
        """Check that the provider's certificate holds an RSA-2048 key, and cache it."""
        try:
            fpcrypto.app_certificate_public_key(body)
        except crypto.CryptoError as exc:
            raise CdmError("APP_CERTIFICATE_INVALID", "the application certificate is not an RSA-2048 X.509") from exc
        self._cert_path.parent.mkdir(parents=True, exist_ok=True)
        self._cert_path.write_bytes(body)

    def prepare(self, link: Link, *, privacy: bool = True) -> None:
        """Fetch the provider's application certificate once (every SPC is encrypted to it)."""
        if self.app_certificate is None:
            reply = link.get(CERTIFICATE_PATH)
            if reply.status != 200:
                raise CdmError(reply.error_code or "APP_CERTIFICATE_UNAVAILABLE",
                               f"GET {CERTIFICATE_PATH} answered HTTP {reply.status}")
            self.accept_certificate(reply.body)

    # ----------------------------------------------------------------- identity

    @property
    def security_level(self) -> SecurityLevel:
        if self.audio_only:
            return SecurityLevel.AUDIO
        return SecurityLevel.MAIN if self.device.tee.hardware_backed else SecurityLevel.BASELINE

    def capabilities(self) -> fields.Capabilities:
        hdcp = Hdcp(self.device.record.max_hdcp)
        flags = Capability.OFFLINE_KEY | Capability.CHECK_IN
        if not self.audio_only:
            flags |= Capability.SECURITY_LEVEL_BASELINE
            if self.security_level is SecurityLevel.MAIN:
                flags |= Capability.SECURITY_LEVEL_MAIN
        if hdcp.satisfies(Hdcp.V2_2):
            flags |= Capability.HDCP_TYPE1
        emu = EmuCapability.AUDIO_ONLY if self.audio_only else EmuCapability(0)
        if hdcp.satisfies(Hdcp.V1):
            emu |= EmuCapability.HDCP_TYPE0
        return fields.Capabilities(flags, emu)

    def _evidence(self, seed: bytes, now: int) -> Evidence:
        """On L1 the TEE reports the root of trust; on L3 these are software claims."""
        record = self.device.record
        flags = record.flags
        return Evidence(
            verified_boot="SELF_SIGNED" if flags.bootloader_unlocked else "VERIFIED",
            bootloader_locked=not flags.bootloader_unlocked,
            root_indicators=("su_binary", "magisk") if flags.rooted else (),
            app_package=record.app_package,
            app_signing_digest=bytes.fromhex(record.app_signing_digest),
            app_recognized=not flags.tampered_app,
            nonce=attestation_nonce(seed), timestamp=now, os_patch_level=record.os_patch_level,
            from_tee=self.device.tee.hardware_backed,
        )

    # ---------------------------------------------------------------------- SPC

    def build_spc(self, asset_id: str, kind: LicenseKind = LicenseKind.TEMPORARY, *,
                  extra: list[tuple[int, bytes]] | None = None) -> PendingSpc:
        """An SPC for ``asset_id`` (a content id, or a key id in hex) and the license type wanted."""
        cert = self.app_certificate
        if cert is None:
            raise CdmError("NO_APP_CERTIFICATE", "fetch the application certificate first")
        now = self.device.now()
        seed, r2 = crypto.random_bytes(16), crypto.random_bytes(21)
        playback_id = self.playback_id if self.playback_id is not None else int.from_bytes(
            crypto.random_bytes(8), "big")
        playback = fields.MediaPlaybackState(now, self.playback_state, playback_id)
        blocks: list[tuple[int, bytes]] = [
            (Tag.ASSET_ID, asset_id.encode()),
            (Tag.ANTI_REPLAY_SEED, seed),
            (Tag.R2, r2),
            (Tag.TRANSACTION_ID, crypto.random_bytes(8)),
            (Tag.PROTOCOL_VERSION_USED, PROTOCOL_VERSION.to_bytes(4, "big")),
            (Tag.CAPABILITIES, self.capabilities().encode()),
            (Tag.MEDIA_PLAYBACK_STATE, playback.encode()),
            (Tag.EMU_REQUEST_INFO, fields.encode_request_info(kind)),
            (Tag.EMU_ATTESTATION, fields.encode_evidence(self._evidence(seed, now))),
            (Tag.EMU_CERTIFICATE_CHAIN, self.device.certificate_chain),
            *(extra or []),
        ]
        hu = hashlib.sha1(bytes.fromhex(self.device.device_id)).digest()
        ref, body = self.device.tee.fairplay_build_spc(
            app_certificate=cert, app_public_key=fpcrypto.app_certificate_public_key(cert), r2=r2, hu=hu,
            blocks=blocks)
        return PendingSpc(body, ref, seed, asset_id, kind)

    def build_sync_spc(self, record: fields.DestructionRecord) -> PendingSpc:
        """Report deleted offline keys (secure invalidation); the record is signed with the SPC."""
        sync = fields.OfflineSync(fields.SyncFlag.REPORT | fields.SyncFlag.SECURE_INVALIDATION,
                                  tuple(bytes.fromhex(i) for i in record.license_ids))
        return self.build_spc(record.content_id, LicenseKind.PERSISTENT, extra=[
            (Tag.OFFLINE_SYNC, sync.encode()), (Tag.EMU_DESTRUCTION_RECORD, record.encode())])

    def build_challenge(self, content_id: str, kind: LicenseKind) -> PendingSpc:
        return self.build_spc(content_id, kind)

    def wire(self, pending: PendingSpc) -> Outgoing:
        """The SPC in this CDM's transport shape."""
        encoded = base64.b64encode(pending.body).decode("ascii")
        if self.shape == "form":
            return Outgoing(urlencode({"spc": encoded, "assetId": pending.asset_id}).encode(),
                            "application/x-www-form-urlencoded")
        if self.shape == "json":
            return Outgoing(json.dumps({"spc": encoded, "assetId": pending.asset_id}).encode(), "application/json")
        return Outgoing(pending.body)

    def license_answer(self, reply: HttpReply) -> bytes:
        """The CKC bytes of an answer, or CdmError with the server's code."""
        if reply.status != 200:
            code, message = reply.error_code or "HTTP_ERROR", f"HTTP {reply.status}"
            try:
                doc = json.loads(reply.body)
                code, message = doc.get("code", code), doc.get("message", message)
            except (ValueError, AttributeError):
                pass
            raise CdmError(code, message)
        return decode_answer(reply.body, reply.headers.get("content-type", "").split(";")[0].strip())

    @property
    def holder(self):
        return self.device.tee

    def persisted(self, pending: PendingSpc, loaded: LoadedKey) -> Persisted:
        """The CKC with its session secrets wrapped to this device's key (no content key stored)."""
        info = loaded.contents.license_info  # never None: process_ckc refuses a CKC without it
        return Persisted(info.version if info else 0, pending.body, loaded.ckc, b"", self.persist(pending),
                         loaded.issued_at)

    def settle(self, link: Link, pending: PendingSpc, loaded: LoadedKey) -> None:
        self.device.tee.fairplay_forget(pending.ref)

    # ---------------------------------------------------------------------- CKC

    def process_license(self, pending: PendingSpc, answer: bytes) -> LoadedKey:
        return self.process_ckc(pending, answer)

    def process_ckc(self, pending: PendingSpc, ckc: bytes) -> LoadedKey:
        """Verify the CKC (integrity, R1, level) and load its keys into the TEE."""
        try:
            handle, contents = self.device.tee.fairplay_load_ckc(pending.ref, ckc)
        except TeeError as exc:
            raise CdmError(exc.code, exc.message) from exc
        loaded = LoadedKey(handle, contents, ckc)
        self._check(loaded)
        return loaded

    def load_stored(self, wrapped_secrets: bytes, ckc: bytes) -> LoadedKey:
        """Load an offline key from storage (offline: no network)."""
        try:
            handle, contents = self.device.tee.fairplay_load_stored(wrapped_secrets, ckc)
        except TeeError as exc:
            raise CdmError(exc.code, exc.message) from exc
        loaded = LoadedKey(handle, contents, ckc)
        self._check(loaded)
        return loaded

    def persist(self, pending: PendingSpc) -> bytes:
        return self.device.tee.fairplay_persist(pending.ref)

    def _check(self, loaded: LoadedKey) -> None:
        required = loaded.contents.security_level
        if required is not None and required > self.security_level:
            self.device.tee.close(loaded.handle)
            raise CdmError("SECURITY_LEVEL_NOT_MET",
                           f"the CKC needs security level {required.name.lower()}, "
                           f"this device is {self.security_level.name.lower()}")
        if loaded.contents.license_info is None or not loaded.contents.entries:
            self.device.tee.close(loaded.handle)
            raise CdmError("UNEXPECTED_REPLY", "the CKC carries no content key")

    def process_sync_ack(self, pending: PendingSpc, ckc: bytes) -> fields.InvalidationAck:
        """Verify the server's acknowledgement of a secure invalidation."""
        try:
            handle, contents = self.device.tee.fairplay_load_ckc(pending.ref, ckc)
        except TeeError as exc:
            raise CdmError(exc.code, exc.message) from exc
        finally:
            self.device.tee.fairplay_forget(pending.ref)
        self.device.tee.close(handle)
        sync = contents.offline_sync
        if contents.ack is None or sync is None or not sync.flags & fields.SyncFlag.SUCCESS:
            raise CdmError("UNEXPECTED_REPLY", "the server did not acknowledge the invalidation")
        return contents.ack

    def process_lease_end_ack(self, pending: PendingSpc, ckc: bytes) -> fields.InvalidationAck:
        """Verify the server's acknowledgement of a lease end (playback state STOPPED): the licenses it closed."""
        try:
            handle, contents = self.device.tee.fairplay_load_ckc(pending.ref, ckc)
        except TeeError as exc:
            raise CdmError(exc.code, exc.message) from exc
        finally:
            self.device.tee.fairplay_forget(pending.ref)
        self.device.tee.close(handle)
        if contents.ack is None:
            raise CdmError("UNEXPECTED_REPLY", "the server did not acknowledge the lease end")
        return contents.ack
