"""TLLV framing: round trips, padding, unknown tags, truncation and bad lengths."""

import struct

import pytest

from license_server.errors import DrmError, ErrorCode
from license_server.protocols.fairplay import fields
from license_server.protocols.fairplay.tllv import Blocks, Tag, decode, encode, encode_all


def refused(data: bytes) -> DrmError:
    with pytest.raises(DrmError) as caught:
        decode(data)
    assert caught.value.code is ErrorCode.MALFORMED_CHALLENGE
    return caught.value


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 44, 200])
def test_round_trip_pads_every_block_to_a_multiple_of_16(size):
    value = bytes(range(256))[:size]
    block = encode(Tag.R1, value)
    tag, block_length, value_length = struct.unpack(">QII", block[:16])
    assert tag == Tag.R1 and value_length == size
    assert block_length % 16 == 0 and block_length - size < 16 and len(block) == 16 + block_length
    [decoded] = decode(block)
    assert decoded.tag == Tag.R1 and decoded.value == value and decoded.offset == 0


def test_extra_padding_blocks_are_allowed_and_ignored():
    block = encode(Tag.ASSET_ID, b"demo-movie", extra_blocks=2)
    assert len(block) == 16 + 16 + 32
    assert decode(block)[0].value == b"demo-movie"


def test_a_stream_keeps_order_and_offsets():
    data = encode_all([(Tag.ASSET_ID, b"demo-movie"), (Tag.R2, b"\x01" * 21), (Tag.ANTI_REPLAY_SEED, b"\x02" * 16)])
    blocks = decode(data)
    assert [b.tag for b in blocks] == [Tag.ASSET_ID, Tag.R2, Tag.ANTI_REPLAY_SEED]
    assert blocks[1].offset == 32 and blocks[2].offset == 32 + 48
    assert data[blocks[2].offset:blocks[2].offset + 8] == struct.pack(">Q", Tag.ANTI_REPLAY_SEED)


def test_unknown_tags_are_skipped_by_their_block_length():
    unknown = 0x0123456789ABCDEF
    data = encode_all([(unknown, b"x" * 40), (Tag.ASSET_ID, b"demo-movie")])
    found = Blocks(decode(data), what="test")
    assert found.require(Tag.ASSET_ID) == b"demo-movie"
    assert found.blocks[0].name == "0x0123456789abcdef"


def test_truncated_header_is_refused():
    data = encode(Tag.ASSET_ID, b"demo-movie")
    assert "truncated TLLV header" in refused(data + b"\x00" * 10).message


def test_truncated_block_is_refused():
    data = encode(Tag.ASSET_ID, b"demo-movie" * 3)
    assert "truncated" in refused(data[:-5]).message


def test_block_length_that_overflows_the_payload_is_refused():
    data = struct.pack(">QII", Tag.R1, 0xFFFFFFF0, 4) + b"abcd" + bytes(12)
    assert "truncated" in refused(data).message


def test_block_length_not_a_multiple_of_16_is_refused():
    data = struct.pack(">QII", Tag.R1, 20, 4) + bytes(20)
    assert "not a multiple of 16" in refused(data).message


def test_value_length_larger_than_block_length_is_refused():
    data = struct.pack(">QII", Tag.R1, 16, 17) + bytes(16)
    assert "exceeds block length" in refused(data).message


def test_a_public_tag_twice_is_refused_but_our_repeatable_tags_are_not():
    data = encode_all([(Tag.R1, b"a"), (Tag.R1, b"b")])
    with pytest.raises(DrmError) as caught:
        Blocks(decode(data), what="SPC payload")
    assert "appears 2 times" in caught.value.message
    keys = encode_all([(Tag.EMU_CONTENT_KEY, b"a"), (Tag.EMU_CONTENT_KEY, b"b")])
    blocks = Blocks(decode(keys), what="CKC", repeatable=frozenset({Tag.EMU_CONTENT_KEY}))
    assert len(blocks.all(Tag.EMU_CONTENT_KEY)) == 2


def test_required_block_missing_and_wrong_size_are_refused():
    found = Blocks(decode(encode(Tag.R2, b"\x00" * 20)), what="SPC payload")
    with pytest.raises(DrmError, match="must be 21 bytes"):
        found.require(Tag.R2, size=21)
    with pytest.raises(DrmError, match="ANTI_REPLAY_SEED .* is missing"):
        found.require(Tag.ANTI_REPLAY_SEED)


def test_public_value_layouts_round_trip():
    duration = fields.KeyDuration(fields.NO_LEASE, 3600, fields.KeyDurationType.RENTAL)
    raw = duration.encode()
    assert raw[:4] == b"\xff\xff\xff\xff" and raw[-4:] == bytes.fromhex("86d34a3a")
    assert fields.KeyDuration.decode(raw) == duration
    offline = fields.OfflineKey(b"\x07" * 16, 30 * 86400, 48 * 3600)
    assert fields.OfflineKey.decode(offline.encode()) == offline
    sync = fields.OfflineSync(fields.SyncFlag.SECURE_INVALIDATION, (b"\x01" * 16, b"\x02" * 16))
    assert fields.OfflineSync.decode(sync.encode()) == sync
    caps = fields.Capabilities(fields.Capability.HDCP_TYPE1 | fields.Capability.OFFLINE_KEY,
                               fields.EmuCapability.AUDIO_ONLY)
    assert fields.Capabilities.decode(caps.encode()) == caps
    assert fields.decode_hdcp(fields.encode_hdcp(fields.HdcpType.TYPE1)) is fields.HdcpType.TYPE1
    level = fields.encode_security_level(fields.SecurityLevel.MAIN)
    assert fields.decode_security_level(level) is fields.SecurityLevel.MAIN
    assert fields.SecurityLevel.AUDIO < fields.SecurityLevel.BASELINE < fields.SecurityLevel.MAIN


def test_offline_sync_with_a_wrong_record_count_is_refused():
    raw = fields.OfflineSync(fields.SyncFlag.REPORT, (b"\x01" * 16,)).encode()
    with pytest.raises(DrmError, match="lists 1 deleted"):
        fields.OfflineSync.decode(raw + b"\x00" * 16)
