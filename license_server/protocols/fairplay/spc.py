"""The SPC (server playback context): container, session block, and parsing (sans-I/O).

Container, SPC version 2 (public layout)::

    version 4 | reserved 4 | IV 16 | SPCK wrapped RSA-OAEP-SHA256 256 |
    certificate hash (SHA-1) 20 | payload length 4 | payload (AES-128-CBC under SPCK, no padding)

The decrypted payload is a TLLV stream. ``[SK..R1]`` holds IV 16 and, under
DASk, SK 16 | HU 20 | R1 44 | integrity 16; the integrity must equal the
``[SK..R1 integrity]`` block. Our ``EMU_DEVICE_SIGNATURE`` block must come last:
it signs (RSA-PSS, device key) every payload byte before it, so the attestation
evidence, certificate chain and destruction records are covered.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from license_server import crypto
from license_server.core.model import DeviceClaims, Hdcp, LicenseChallenge, LicenseKind, RequestKind
from license_server.crypto import fairplay as fpcrypto
from license_server.errors import DrmError, ErrorCode, malformed
from license_server.protocols.fairplay import fields
from license_server.protocols.fairplay.tllv import Blocks, Tag, decode, encode_all

SYSTEM = "fairplay"
SPC_VERSION = 2
MAX_SPC_BYTES = 64 * 1024
_HEAD = struct.Struct(">II16s256s20sI")
SK_SIZE, HU_SIZE, R1_SIZE, INTEGRITY_SIZE, R2_SIZE, SEED_SIZE = 16, 20, 44, 16, 21, 16
ASSET_ID_MIN, ASSET_ID_MAX = 2, 200


@dataclass(frozen=True)
class SessionSecrets:
    """What the server learns from ``[SK..R1]`` and needs to build the CKC."""

    sk: bytes
    hu: bytes
    r1: bytes
    seed: bytes


def seal_session_block(dask: bytes, iv: bytes, sk: bytes, hu: bytes, r1: bytes, integrity: bytes) -> bytes:
    """The ``[SK..R1]`` value: IV || AES-CBC(DASk, SK | HU | R1 | integrity)."""
    plain = sk + hu + r1 + integrity
    if len(plain) != 96:
        raise ValueError("SK, HU, R1 and integrity must be 16, 20, 44 and 16 bytes")
    return iv + fpcrypto.cbc_encrypt_raw(dask, iv, plain)


def open_session_block(dask: bytes, value: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    plain = fpcrypto.cbc_decrypt_raw(dask, value[:16], value[16:])
    return plain[:16], plain[16:36], plain[36:80], plain[80:96]


def parse_asset_id(asset_id: str) -> tuple[str | None, tuple[bytes, ...]]:
    """``skd://`` prefix dropped; 32 hex characters name one key id, anything else a content id."""
    value = asset_id[len("skd://"):] if asset_id.startswith("skd://") else asset_id
    if len(value) == 32:
        try:
            return None, (bytes.fromhex(value),)
        except ValueError:
            pass
    return value, ()


# ------------------------------------------------------------------- device side

def build_spc(*, app_certificate: bytes, app_public_key: bytes, blocks: list[tuple[int, bytes]],
              sign: Callable[[bytes], bytes], spc_key: bytes, iv: bytes) -> bytes:
    """Encrypt ``blocks`` (plus the device signature over them) into an SPC container."""
    unsigned = encode_all(blocks)
    payload = unsigned + encode_all([(Tag.EMU_DEVICE_SIGNATURE, sign(unsigned))])
    encrypted = fpcrypto.cbc_encrypt_raw(spc_key, iv, payload)
    wrapped = fpcrypto.wrap_spc_key(app_public_key, spc_key)
    head = _HEAD.pack(SPC_VERSION, 0, iv, wrapped, fpcrypto.certificate_hash(app_certificate), len(encrypted))
    return head + encrypted


# ------------------------------------------------------------------- server side

@dataclass(frozen=True)
class ParsedSpc:
    challenge: LicenseChallenge
    secrets: SessionSecrets
    asset_id: str
    capabilities: fields.Capabilities
    playback: fields.MediaPlaybackState
    transaction_id: bytes | None
    streaming_indicator: int | None
    offline_sync: fields.OfflineSync | None
    destruction: fields.DestructionRecord | None
    blocks: Blocks

    @property
    def audio_only(self) -> bool:
        return bool(self.capabilities.emu & fields.EmuCapability.AUDIO_ONLY)

    @property
    def is_invalidation(self) -> bool:
        return self.offline_sync is not None and bool(
            self.offline_sync.flags & (fields.SyncFlag.SECURE_INVALIDATION | fields.SyncFlag.REPORT))


def open_container(body: bytes, *, app_certificate: bytes, app_key_pem: bytes) -> tuple[bytes, bytes]:
    """Check the header and return (SPC key, decrypted payload)."""
    if not body:
        raise malformed("empty SPC")
    if len(body) > MAX_SPC_BYTES:
        raise DrmError(ErrorCode.CHALLENGE_TOO_LARGE, f"SPC larger than {MAX_SPC_BYTES} bytes")
    if len(body) < _HEAD.size:
        raise malformed(f"SPC is {len(body)} bytes, shorter than its {_HEAD.size}-byte header")
    version, _, iv, wrapped, cert_hash, length = _HEAD.unpack_from(body)
    if version != SPC_VERSION:
        raise malformed(f"SPC version {version} is not supported (this server speaks version {SPC_VERSION})")
    if not crypto.constant_time_equal(cert_hash, fpcrypto.certificate_hash(app_certificate)):
        raise malformed("the SPC was built for another application certificate (certificate hash mismatch); "
                        "fetch GET /fairplay/certificate again")
    payload = body[_HEAD.size:]
    if length != len(payload):
        raise malformed(f"SPC payload length field says {length} bytes, {len(payload)} follow")
    if not length or length % 16:
        raise malformed(f"SPC payload of {length} bytes is not a non-empty multiple of 16")
    try:
        spc_key = fpcrypto.unwrap_spc_key(app_key_pem, wrapped)
        if len(spc_key) != 16:
            raise crypto.CryptoError()
        plain = fpcrypto.cbc_decrypt_raw(spc_key, iv, payload)
    except crypto.CryptoError as exc:
        raise malformed("the SPC key does not unwrap with the application certificate's key") from exc
    return spc_key, plain


def parse_spc(body: bytes, *, app_certificate: bytes, app_key_pem: bytes) -> ParsedSpc:
    """Parse and check an SPC into neutral form plus the session secrets."""
    spc_key, plain = open_container(body, app_certificate=app_certificate, app_key_pem=app_key_pem)
    blocks = Blocks(decode(plain, what="SPC payload"), what="SPC payload")
    r2 = blocks.require(Tag.R2, size=R2_SIZE)
    seed = blocks.require(Tag.ANTI_REPLAY_SEED, size=SEED_SIZE)
    try:
        sk, hu, r1, integrity = open_session_block(fpcrypto.derive_dask(spc_key, r2),
                                                   blocks.require(Tag.SESSION_KEY_R1, size=112))
    except crypto.CryptoError as exc:
        raise malformed("[SK..R1] does not decrypt") from exc
    expected = blocks.require(Tag.SESSION_KEY_R1_INTEGRITY, size=INTEGRITY_SIZE)
    if not crypto.constant_time_equal(integrity, expected):
        raise DrmError(ErrorCode.SIGNATURE_INVALID, "the [SK..R1] integrity does not match: the SPC was altered")
    raw_asset = blocks.require(Tag.ASSET_ID, min_size=ASSET_ID_MIN, max_size=ASSET_ID_MAX)
    try:
        asset_id = raw_asset.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise malformed("the asset id is not UTF-8") from exc
    capabilities = fields.Capabilities.decode(blocks.require(Tag.CAPABILITIES, size=16))
    playback = fields.MediaPlaybackState.decode(blocks.require(Tag.MEDIA_PLAYBACK_STATE, size=16))
    info = blocks.optional(Tag.EMU_REQUEST_INFO, size=4)
    kind = fields.decode_request_info(info) if info is not None else LicenseKind.TEMPORARY
    sync_value = blocks.optional(Tag.OFFLINE_SYNC, min_size=48)
    offline_sync = fields.OfflineSync.decode(sync_value) if sync_value is not None else None
    record_value = blocks.optional(Tag.EMU_DESTRUCTION_RECORD, min_size=2, max_size=8192)
    destruction = fields.DestructionRecord.decode(record_value) if record_value is not None else None
    streaming = blocks.optional(Tag.STREAMING_INDICATOR, size=8)
    content_id, key_ids = parse_asset_id(asset_id)
    claims = _device_claims(blocks, plain, capabilities)
    challenge = LicenseChallenge(
        system=SYSTEM, kind=RequestKind.NEW, license_kind=kind, content_id=content_id, key_ids=key_ids,
        request_id=seed, request_time=playback.date, device=claims, playback_id=f"{playback.playback_id:016x}",
    )
    return ParsedSpc(
        challenge=challenge, secrets=SessionSecrets(sk, hu, r1, seed), asset_id=asset_id,
        capabilities=capabilities, playback=playback, transaction_id=blocks.optional(Tag.TRANSACTION_ID, size=8),
        streaming_indicator=int.from_bytes(streaming, "big") if streaming else None,
        offline_sync=offline_sync, destruction=destruction, blocks=blocks,
    )


def _device_claims(blocks: Blocks, plain: bytes, capabilities: fields.Capabilities) -> DeviceClaims | None:
    signature = blocks.get(Tag.EMU_DEVICE_SIGNATURE)
    chain = blocks.optional(Tag.EMU_CERTIFICATE_CHAIN, min_size=1)
    if signature is None or chain is None:
        return None  # attestation refuses it with a clear message
    if signature is not blocks.blocks[-1]:
        raise malformed("the device signature must be the last TLLV of the SPC payload")
    evidence_value = blocks.optional(Tag.EMU_ATTESTATION, min_size=2)
    return DeviceClaims(
        certificate_chain=chain,
        signed_payload=plain[:signature.offset],
        signature=signature.value,
        evidence=fields.decode_evidence(evidence_value) if evidence_value is not None else None,
        max_hdcp=max_hdcp(capabilities),
    )


def max_hdcp(capabilities: fields.Capabilities) -> Hdcp:
    """Type 1 capability -> HDCP 2.2; our Type 0 flag -> HDCP 1; else none."""
    if capabilities.flags & fields.Capability.HDCP_TYPE1:
        return Hdcp.V2_2
    if capabilities.emu & fields.EmuCapability.HDCP_TYPE0:
        return Hdcp.V1
    return Hdcp.NONE
