"""License ids: 16 bytes, written as 32 hex digits, that begin with the second they were issued.

A random id lands anywhere in every index keyed on it: the licenses' primary key, the key-id
table (ordered by key id, then license id) and the audit trail's license index. On a store of a
million licenses each such insert reads a cold index page and writes it back whole. An id that
begins with its issue time lands at the growing end of those indexes instead, where the pages are
already in memory. The other 11 bytes (88 bits) are random, so ids stay unguessable and unique;
the issue time they disclose is in the license anyway.
"""

from __future__ import annotations

from license_server import crypto

TIME_BYTES = 5  # seconds since 1970, big-endian: in order until the year 36812
RANDOM_BYTES = 16 - TIME_BYTES
_TIME_RANGE = 1 << (8 * TIME_BYTES)


def new_license_id(now: int) -> str:
    """A fresh license id for a license issued at ``now`` (seconds)."""
    return (max(now, 0) % _TIME_RANGE).to_bytes(TIME_BYTES, "big").hex() + crypto.random_bytes(RANDOM_BYTES).hex()
