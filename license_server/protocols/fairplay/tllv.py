"""TLLV framing and the tag table of the FairPlay-style exchange (sans-I/O).

A TLLV block is::

    tag           8 bytes, big-endian
    block length  4 bytes: value length + padding, a multiple of 16
    value length  4 bytes
    value         value-length bytes
    padding       random bytes up to the block length

Readers skip tags they do not know (that is what the block length is for);
malformed framing raises ``MALFORMED_CHALLENGE`` with the offset and the reason.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from license_server import crypto
from license_server.errors import malformed

HEADER_SIZE = 16
BLOCK = 16
_HEADER = struct.Struct(">QII")


class Tag(IntEnum):
    """TLLV tags. The first group are public FairPlay Streaming values; the second are ours.

    Ours are the first 8 bytes of SHA-256("drm-license-emulator fairplay tag|<name>").
    """

    # --- public FairPlay Streaming tag values (SPC)
    SESSION_KEY_R1 = 0x3D1A10B8BFFAC2EC
    SESSION_KEY_R1_INTEGRITY = 0xB349D4809E910687
    ANTI_REPLAY_SEED = 0x89C90F12204106B2
    R2 = 0x71B5595AC1521133
    RETURN_REQUEST = 0x19F9D4E5AB7609CB
    ASSET_ID = 0x1BF7F53F5D5D5A1F
    TRANSACTION_ID = 0x47AA7AD3440577DE
    PROTOCOL_VERSIONS_SUPPORTED = 0x67B8FB79ECCE1A13
    PROTOCOL_VERSION_USED = 0x5D81BCBCC7F61703
    STREAMING_INDICATOR = 0xABB0256A31843974
    MEDIA_PLAYBACK_STATE = 0xEB8EFDF2B25AB3A0
    OFFLINE_SYNC = 0x77966DE1DC1083AD
    CAPABILITIES = 0x9C02AF3253C07FB2
    # --- public FairPlay Streaming tag values (CKC)
    ENCRYPTED_CK = 0x58B38165AF0E3D5A
    R1 = 0xEA74C4645D5EFEE9
    KEY_DURATION = 0x47ACF6A418CD091A
    OFFLINE_KEY = 0x6375D9727060218C
    HDCP_INFORMATION = 0x2E52F1530D8DDB4A
    SECURITY_LEVEL = 0x644CB1DAC0313250
    # --- ours (emulator extensions)
    EMU_REQUEST_INFO = 0xA8E7115528D577C0
    EMU_ATTESTATION = 0x20631B237C56180C
    EMU_CERTIFICATE_CHAIN = 0xD913BF67BEA030EA
    EMU_DEVICE_SIGNATURE = 0x45E59BF11CE96A9D
    EMU_CONTENT_KEY = 0x8BB8B6829C46A4A9
    EMU_LICENSE_INFO = 0x289A63F0F448D675
    EMU_CKC_INTEGRITY = 0x32BE2A22F7C85EA3
    EMU_DESTRUCTION_RECORD = 0x3C71717A57274118
    EMU_INVALIDATION_ACK = 0x464CA8DF142DC3B3


OURS = frozenset(t for t in Tag if t.name.startswith("EMU_"))


@dataclass(frozen=True)
class Tllv:
    """One decoded block; ``offset`` is where its header starts in the payload."""

    tag: int
    value: bytes
    offset: int = 0

    @property
    def name(self) -> str:
        try:
            return Tag(self.tag).name
        except ValueError:
            return f"0x{self.tag:016x}"


def encode(tag: int, value: bytes, *, extra_blocks: int = 0) -> bytes:
    """One TLLV block, padded with random bytes to a multiple of 16 (plus extra blocks)."""
    if not 0 <= tag < 1 << 64:
        raise ValueError("a TLLV tag is 8 bytes")
    padding = (-len(value)) % BLOCK + BLOCK * extra_blocks
    return _HEADER.pack(tag, len(value) + padding, len(value)) + value + crypto.random_bytes(padding)


def encode_all(blocks: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(encode(tag, value) for tag, value in blocks)


def decode(data: bytes, *, what: str = "payload") -> list[Tllv]:
    """Decode a whole TLLV stream; every byte must belong to a well-formed block."""
    blocks: list[Tllv] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < HEADER_SIZE:
            raise malformed(f"{what}: truncated TLLV header at offset {offset} "
                            f"({len(data) - offset} of {HEADER_SIZE} bytes)")
        tag, block_length, value_length = _HEADER.unpack_from(data, offset)
        name = Tllv(tag, b"").name
        if block_length % BLOCK:
            raise malformed(f"{what}: TLLV {name} at offset {offset}: block length {block_length} "
                            f"is not a multiple of {BLOCK}")
        if value_length > block_length:
            raise malformed(f"{what}: TLLV {name} at offset {offset}: value length {value_length} "
                            f"exceeds block length {block_length}")
        end = offset + HEADER_SIZE + block_length
        if end > len(data):
            raise malformed(f"{what}: TLLV {name} at offset {offset}: block of {block_length} bytes "
                            f"is truncated ({len(data) - offset - HEADER_SIZE} bytes left)")
        start = offset + HEADER_SIZE
        blocks.append(Tllv(tag, data[start:start + value_length], offset))
        offset = end
    return blocks


class Blocks:
    """Decoded blocks by tag. Public tags may appear once; ``all`` allows repeats."""

    def __init__(self, blocks: list[Tllv], *, what: str, repeatable: frozenset[int] = frozenset()) -> None:
        self.blocks = blocks
        self.what = what
        self._by_tag: dict[int, list[Tllv]] = {}
        for block in blocks:
            self._by_tag.setdefault(block.tag, []).append(block)
        for tag, found in self._by_tag.items():
            if len(found) > 1 and tag not in repeatable and tag in Tag._value2member_map_:
                raise malformed(f"{what}: TLLV {found[0].name} appears {len(found)} times")

    def get(self, tag: Tag) -> Tllv | None:
        found = self._by_tag.get(tag)
        return found[0] if found else None

    def require(self, tag: Tag, *, size: int | None = None, min_size: int = 0, max_size: int | None = None) -> bytes:
        block = self.get(tag)
        if block is None:
            raise malformed(f"{self.what}: required TLLV {tag.name} (0x{int(tag):016x}) is missing")
        return check_size(block, size=size, min_size=min_size, max_size=max_size, what=self.what)

    def optional(self, tag: Tag, *, size: int | None = None, min_size: int = 0,
                 max_size: int | None = None) -> bytes | None:
        block = self.get(tag)
        if block is None:
            return None
        return check_size(block, size=size, min_size=min_size, max_size=max_size, what=self.what)

    def all(self, tag: Tag) -> list[Tllv]:
        return list(self._by_tag.get(tag, ()))

    def __contains__(self, tag: int) -> bool:
        return tag in self._by_tag


def check_size(block: Tllv, *, size: int | None = None, min_size: int = 0, max_size: int | None = None,
               what: str = "payload") -> bytes:
    n = len(block.value)
    if size is not None and n != size:
        raise malformed(f"{what}: TLLV {block.name} must be {size} bytes, not {n}")
    if n < min_size or (max_size is not None and n > max_size):
        raise malformed(f"{what}: TLLV {block.name} is {n} bytes (allowed {min_size}..{max_size})")
    return block.value
