"""The CKC (content key context): building it on the server, opening it on the device.

Container, version 1 (public layout)::

    version 4 | reserved 4 | IV 16 | payload length 4 | payload

The payload is a TLLV stream, AES-128-CBC (no padding) under the anti-replay
key derived from R1 and the SPC's anti-replay seed. Public blocks: R1, the
first content key as ``[Encrypted CK]`` (IV 16 | AES-ECB(SK, CK) 16), key
duration, offline key, HDCP information, security level, offline sync. Ours:
one ``EMU_CONTENT_KEY`` per key (key id, track and its own requirements), the
license info, the invalidation acknowledgement, and ``EMU_CKC_INTEGRITY`` last:
HMAC-SHA256 under a key derived from SK and R1 over the header and every
plaintext byte before it, so a CKC altered in transit is refused.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from license_server import crypto
from license_server.core.model import Grant, Hdcp, LicenseKind, Robustness, Track, TrackKey
from license_server.crypto import fairplay as fpcrypto
from license_server.errors import DrmError, malformed
from license_server.protocols.fairplay import fields
from license_server.protocols.fairplay.fields import NO_LEASE, HdcpType, KeyDurationType, SecurityLevel
from license_server.protocols.fairplay.spc import SessionSecrets
from license_server.protocols.fairplay.tllv import Blocks, Tag, decode, encode, encode_all

CKC_VERSION = 1
MAX_CKC_BYTES = 64 * 1024
_HEAD = struct.Struct(">II16sI")
_T = TypeVar("_T")

def security_level(key: TrackKey) -> SecurityLevel:
    """The FairPlay level a key requires, from the requirement the policy applied to it:
    hardware robustness is main; otherwise audio keys are audio, video keys baseline."""
    if key.robustness >= Robustness.HW_SECURE_CRYPTO:
        return SecurityLevel.MAIN
    return SecurityLevel.AUDIO if key.track is Track.AUDIO else SecurityLevel.BASELINE


def hdcp_type(required: Hdcp) -> HdcpType:
    """Neutral HDCP requirement to the FairPlay HDCP type."""
    if required is Hdcp.NONE:
        return HdcpType.NONE
    return HdcpType.TYPE1 if required >= Hdcp.V2_2 else HdcpType.TYPE0


def key_duration(grant: Grant) -> fields.KeyDuration | None:
    """The key duration block for a grant (None: the key lives as long as the session)."""
    policy = grant.policy
    lease = getattr(policy, "lease_duration", 0)
    if grant.kind is LicenseKind.PERSISTENT:
        rental = policy.rental_duration
        kind = KeyDurationType.PERSISTENCE_AND_RENTAL if rental else KeyDurationType.PERSISTENCE
        return fields.KeyDuration(NO_LEASE, rental or NO_LEASE, kind)
    rental = policy.license_duration or policy.rental_duration
    if lease and rental:
        return fields.KeyDuration(lease, rental, KeyDurationType.LEASE_AND_RENTAL)
    if lease:
        return fields.KeyDuration(lease, NO_LEASE, KeyDurationType.LEASE)
    if rental:
        return fields.KeyDuration(NO_LEASE, rental, KeyDurationType.RENTAL)
    return None


def _entry(key: TrackKey, sk: bytes) -> fields.ContentKeyEntry:
    iv = crypto.random_bytes(16)
    return fields.ContentKeyEntry(key.kid, key.track, hdcp_type(key.hdcp), security_level(key), iv,
                                  fpcrypto.ecb_encrypt(sk, key.key))


def _seal(secrets: SessionSecrets, blocks: list[tuple[int, bytes]]) -> bytes:
    iv = crypto.random_bytes(16)
    plain = encode_all(blocks)
    header = struct.pack(">II16s", CKC_VERSION, 0, iv)
    tag = crypto.hmac_sha256(fpcrypto.ckc_mac_key(secrets.sk, secrets.r1), header + plain)
    plain += encode(Tag.EMU_CKC_INTEGRITY, tag)
    payload = fpcrypto.cbc_encrypt_raw(fpcrypto.anti_replay_key(secrets.r1, secrets.seed), iv, plain)
    return _HEAD.pack(CKC_VERSION, 0, iv, len(payload)) + payload


def build_ckc(grant: Grant, secrets: SessionSecrets, *, offline_key_supported: bool = True) -> bytes:
    """Encode a grant into a CKC for the session in ``secrets``."""
    entries = [_entry(key, secrets.sk) for key in grant.keys]
    verification = grant.device.verification if grant.device else None
    info = fields.LicenseInfo(bytes.fromhex(grant.license_id), grant.issued_at, grant.version, grant.kind,
                              verification)
    blocks: list[tuple[int, bytes]] = [
        (Tag.R1, secrets.r1),
        (Tag.ENCRYPTED_CK, entries[0].iv + entries[0].encrypted_key),
        *((Tag.EMU_CONTENT_KEY, entry.encode()) for entry in entries),
        (Tag.EMU_LICENSE_INFO, info.encode()),
        (Tag.HDCP_INFORMATION, fields.encode_hdcp(max((e.hdcp for e in entries), key=fields.hdcp_rank))),
        (Tag.SECURITY_LEVEL, fields.encode_security_level(max(e.security_level for e in entries))),
    ]
    duration = key_duration(grant)
    if duration is not None:
        blocks.append((Tag.KEY_DURATION, duration.encode()))
    if grant.kind is LicenseKind.PERSISTENT and offline_key_supported:
        offline = fields.OfflineKey(info.license_id, grant.policy.rental_duration, grant.policy.playback_duration)
        blocks.append((Tag.OFFLINE_KEY, offline.encode()))
    return _seal(secrets, blocks)


def build_invalidation_ack(secrets: SessionSecrets, ack: fields.InvalidationAck,
                           request: fields.OfflineSync) -> bytes:
    """The CKC that acknowledges a secure-invalidation SPC (no content keys)."""
    flags = request.flags | fields.SyncFlag.SUCCESS
    if ack.not_found:
        flags |= fields.SyncFlag.OBJ_NOT_FOUND
    echo = fields.OfflineSync(flags, request.deleted, request.server_challenge, request.title_id)
    return _seal(secrets, [(Tag.R1, secrets.r1), (Tag.OFFLINE_SYNC, echo.encode()),
                           (Tag.EMU_INVALIDATION_ACK, ack.encode())])


def build_lease_end_ack(secrets: SessionSecrets, ack: fields.InvalidationAck) -> bytes:
    """The CKC that acknowledges a lease end (playback state STOPPED): the closed licenses, no content keys."""
    return _seal(secrets, [(Tag.R1, secrets.r1), (Tag.EMU_INVALIDATION_ACK, ack.encode())])


# ------------------------------------------------------------------ device side

@dataclass(frozen=True)
class CkcContents:
    """A verified, decrypted CKC. ``key_values`` must stay inside the TEE on L1."""

    entries: tuple[fields.ContentKeyEntry, ...]
    key_values: dict[bytes, bytes]
    license_info: fields.LicenseInfo | None
    key_duration: fields.KeyDuration | None
    offline_key: fields.OfflineKey | None
    hdcp: fields.HdcpType | None
    security_level: fields.SecurityLevel | None
    offline_sync: fields.OfflineSync | None
    ack: fields.InvalidationAck | None


class CkcIntegrityError(Exception):
    """The CKC does not verify for this session (altered, or for another SPC)."""


def open_ckc(body: bytes, secrets: SessionSecrets) -> CkcContents:
    """Decrypt and verify a CKC; raises CkcIntegrityError or DrmError(MALFORMED_CHALLENGE)."""
    if len(body) < _HEAD.size + 16 or len(body) > MAX_CKC_BYTES:
        raise malformed(f"a CKC of {len(body)} bytes cannot be valid")
    version, _, iv, length = _HEAD.unpack_from(body)
    payload = body[_HEAD.size:]
    if version != CKC_VERSION or length != len(payload) or length % 16:
        raise malformed("CKC header: unknown version or wrong payload length")
    plain = fpcrypto.cbc_decrypt_raw(fpcrypto.anti_replay_key(secrets.r1, secrets.seed), iv, payload)
    try:
        blocks = Blocks(decode(plain, what="CKC payload"), what="CKC payload",
                        repeatable=frozenset({Tag.EMU_CONTENT_KEY}))
    except DrmError as exc:  # garbage after decryption: the CKC was altered or is not for this SPC
        raise CkcIntegrityError("the CKC does not decrypt to TLLV blocks") from exc
    integrity = blocks.get(Tag.EMU_CKC_INTEGRITY)
    if integrity is None or integrity is not blocks.blocks[-1]:
        raise CkcIntegrityError("the CKC carries no integrity tag")
    try:
        crypto.hmac_sha256_verify(fpcrypto.ckc_mac_key(secrets.sk, secrets.r1),
                                  body[:24] + plain[:integrity.offset], integrity.value)
    except crypto.CryptoError as exc:
        raise CkcIntegrityError("the CKC integrity tag does not verify") from exc
    if not crypto.constant_time_equal(blocks.require(Tag.R1, size=44), secrets.r1):
        raise CkcIntegrityError("the CKC answers another SPC (R1 differs)")
    entries = tuple(fields.ContentKeyEntry.decode(b.value) for b in blocks.all(Tag.EMU_CONTENT_KEY))
    values = {e.kid: fpcrypto.ecb_decrypt(secrets.sk, e.encrypted_key) for e in entries}

    def opt(tag: Tag, parse: Callable[[bytes], _T]) -> _T | None:
        value = blocks.optional(tag)
        return parse(value) if value is not None else None

    return CkcContents(
        entries=entries, key_values=values,
        license_info=opt(Tag.EMU_LICENSE_INFO, fields.LicenseInfo.decode),
        key_duration=opt(Tag.KEY_DURATION, fields.KeyDuration.decode),
        offline_key=opt(Tag.OFFLINE_KEY, fields.OfflineKey.decode),
        hdcp=opt(Tag.HDCP_INFORMATION, fields.decode_hdcp),
        security_level=opt(Tag.SECURITY_LEVEL, fields.decode_security_level),
        offline_sync=opt(Tag.OFFLINE_SYNC, fields.OfflineSync.decode),
        ack=opt(Tag.EMU_INVALIDATION_ACK, fields.InvalidationAck.decode),
    )


def neutral_policy(contents: CkcContents) -> dict[str, Any]:
    """The neutral policy keys (seconds; 0 = unlimited) the generic offline player enforces."""
    info = contents.license_info
    persistent = bool(info and info.kind is LicenseKind.PERSISTENT)
    duration = contents.key_duration

    def seconds(value: int | None) -> int:
        return 0 if value in (None, NO_LEASE) else int(value)

    lease = seconds(duration.lease) if duration else 0
    rental = seconds(duration.rental) if duration else 0
    playback = 0
    if contents.offline_key is not None:
        rental, playback = contents.offline_key.storage_duration, contents.offline_key.playback_duration
    license_duration = 0 if persistent else min((v for v in (lease, rental) if v), default=0)
    return {
        "can_play": True, "can_persist": persistent, "can_renew": bool(lease),
        "rental_duration": rental if persistent else 0, "playback_duration": playback,
        "license_duration": license_duration, "lease_duration": lease,
        "renewal_recovery_duration": 0, "renewal_delay": 0, "renewal_retry_interval": 0,
        "play_start_grace_period": 0, "soft_enforce_playback": False, "soft_enforce_rental": False,
        "renewal_server_url": "",
    }
