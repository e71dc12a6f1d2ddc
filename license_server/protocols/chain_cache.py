"""A cache of verified certificate chains, bounded by bytes.

Keys are the SHA-256 of the chain bytes (32 bytes, never the bytes themselves),
values are the small facts the verification produced, and the whole cache is
held under a byte budget with least-recently-used eviction. The trust anchors
only ``put`` a chain after the request it came with proved its signature, so
unsigned traffic cannot fill it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from license_server import crypto

V = TypeVar("V")

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
ENTRY_OVERHEAD = 256  # the digest, the dict slot and the value object's own bookkeeping, roughly


def chain_key(chain: bytes) -> bytes:
    """The cache key of a chain: its SHA-256."""
    return crypto.sha256(chain)


class ChainCache(Generic[V]):
    """Least-recently-used ``digest -> value`` with a byte budget."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, tuple[V, int]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: bytes) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: bytes, value: V, size: int) -> None:
        """Remember ``value`` (about ``size`` bytes); the oldest entries go when over budget."""
        cost = size + ENTRY_OVERHEAD
        if cost > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old[1]
        self._entries[key] = (value, cost)
        self._bytes += cost
        while self._bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= dropped
