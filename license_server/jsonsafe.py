"""One bounded JSON loader for every untrusted body.

``json.loads`` on attacker input can raise ``RecursionError`` (deep nesting)
and spend memory on huge documents. :func:`loads` checks the size and the
nesting depth before parsing and raises :class:`JsonRejected` (a
``ValueError``) for every failure, so callers map one exception to their
dialect's malformed code.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
MAX_BYTES = 1 << 20
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


class JsonRejected(ValueError):
    """The text is not JSON, or is larger or deeper than allowed."""


def depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw`` (string contents ignored)."""
    deepest = level = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b'""', raw)):
        level += 1 if bracket in (b"[", b"{") else -1
        deepest = max(deepest, level)
    return deepest


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """Parse ``raw`` as JSON within ``max_depth`` nesting levels and ``max_bytes`` bytes."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        raise JsonRejected(f"JSON larger than {max_bytes} bytes")
    if depth(data) > max_depth:
        raise JsonRejected(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise JsonRejected(f"not JSON: {str(exc)[:80]}") from None
