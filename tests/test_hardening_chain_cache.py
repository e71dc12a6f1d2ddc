"""Issue 20, defect 3: unsigned requests cannot pin memory in the verified-chain cache."""

from __future__ import annotations

import pytest

from license_server.errors import DrmError
from license_server.protocols.chain_cache import ChainCache
from license_server.protocols.widevine.trust import WidevineTrust


def junk_field(i: int, size: int = 60_000) -> bytes:
    """An unknown length-delimited protobuf field (number 1000) with unique content."""
    body = i.to_bytes(8, "big") * (size // 8)
    length, varint = len(body), b""
    while True:
        byte, length = length & 0x7F, length >> 7
        varint += bytes([byte | (0x80 if length else 0)])
        if not length:
            break
    return b"\xc2\x3e" + varint + body


@pytest.fixture
def trust(keyring) -> WidevineTrust:
    return WidevineTrust(keyring.root_public_key)


def test_unsigned_requests_with_unique_junk_do_not_grow_the_cache(trust, make_device, clock):
    device = make_device("L1")
    chain = device.certificate_chain
    for i in range(200):
        certified = trust.verify_chain(chain + junk_field(i), now=clock.now())
        with pytest.raises(DrmError) as caught:
            trust.verify_signature(certified.public_key, b"payload", bytes(256))
        assert caught.value.code.value == "SIGNATURE_INVALID"
    assert len(trust.cache) == 0 and trust.cache.size_bytes == 0


def test_a_signed_request_caches_its_chain_by_digest(trust, make_device, clock):
    device = make_device("L1")
    certified = trust.verify_chain(device.certificate_chain, now=clock.now())
    trust.verify_signature(certified.public_key, b"payload", device.tee.sign(b"payload"))
    assert len(trust.cache) == 1
    assert all(len(key) == 32 for key in trust.cache._entries)  # the digest, not the chain bytes
    again = trust.verify_chain(device.certificate_chain, now=clock.now())
    assert again == certified


def test_cache_is_bounded_by_bytes():
    cache: ChainCache[str] = ChainCache(max_bytes=10_000)
    for i in range(1000):
        cache.put(i.to_bytes(32, "big"), "x", 500)
    assert cache.size_bytes <= 10_000 and len(cache) == 10_000 // 756
    assert cache.get((999).to_bytes(32, "big")) == "x" and cache.get((0).to_bytes(32, "big")) is None


async def test_over_http_unsigned_requests_leave_the_cache_empty(client, make_device):
    from device_emulator.cdm.widevine import WidevineCdm
    from license_server.core.model import LicenseKind
    from license_server.handlers.widevine import TRUST
    from license_server.protocols.widevine import license_protocol_pb2 as pb

    cdm = WidevineCdm(make_device("L1"))
    trust = client.server.app[TRUST]
    for i in range(30):
        pending = cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=False)
        signed = pb.SignedMessage.FromString(pending.body)
        request = pb.LicenseRequest.FromString(signed.msg)
        request.client_id.token = request.client_id.token + junk_field(i, 20_000)
        signed.msg, signed.signature = request.SerializeToString(), bytes(256)
        response = await client.post("/widevine/license", data=signed.SerializeToString())
        assert response.headers["X-DRM-Error-Code"] == "SIGNATURE_INVALID"
    assert len(trust.cache) == 0
    pending = cdm.build_challenge("demo-movie", LicenseKind.TEMPORARY, privacy=False)
    assert (await client.post("/widevine/license", data=pending.body)).status == 200
    assert len(trust.cache) == 1
