"""The ``cfg=`` query grammar, modelled on the PlayReady test server.

    cfg      := group+
    group    := "(" pair ("," pair)* ")"
    pair     := key ":" value
    key      := [A-Za-z][A-Za-z0-9_]*
    value    := one or more characters other than "(", ")", ",", whitespace

One parenthesised group per license; no spaces anywhere. This module only
parses the grammar; each consumer gives the keys their meaning and reports
unknown keys. Errors name the offending key or position.
"""

from __future__ import annotations

import re

MAX_CFG_LENGTH = 4096
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_BAD_VALUE_CHARS = re.compile(r"[()\s,]")


class CfgError(ValueError):
    """The cfg string does not follow the grammar; ``key`` names the culprit if known."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def parse_groups(text: str) -> list[dict[str, str]]:
    """Parse ``(k:v,...)(k:v,...)`` into one ordered dict per group (keys lower-cased)."""
    if len(text) > MAX_CFG_LENGTH:
        raise CfgError(f"cfg is longer than {MAX_CFG_LENGTH} characters")
    if not text:
        raise CfgError("cfg is empty")
    groups: list[dict[str, str]] = []
    position = 0
    while position < len(text):
        if text[position] != "(":
            raise CfgError(f"cfg: expected '(' at position {position}, found {text[position]!r}")
        end = text.find(")", position)
        if end < 0:
            raise CfgError(f"cfg: group opened at position {position} is not closed")
        groups.append(_parse_group(text[position + 1:end]))
        position = end + 1
    return groups


def _parse_group(body: str) -> dict[str, str]:
    if not body:
        raise CfgError("cfg: empty group '()'")
    pairs: dict[str, str] = {}
    for item in body.split(","):
        key, sep, value = item.partition(":")
        if not sep:
            raise CfgError(f"cfg: {item!r} is not key:value", key=item or None)
        if not _KEY.match(key):
            raise CfgError(f"cfg: {key!r} is not a valid key", key=key)
        key = key.lower()
        if not value or _BAD_VALUE_CHARS.search(value):
            raise CfgError(f"cfg: key {key!r} has an empty or invalid value {value!r}", key=key)
        if key in pairs:
            raise CfgError(f"cfg: key {key!r} is given twice in one group", key=key)
        pairs[key] = value
    return pairs


def parse_bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise CfgError(f"cfg: key {key!r} needs true or false, not {value!r}", key=key)


def parse_seconds(key: str, value: str) -> int:
    """A non-negative whole number of seconds."""
    if not (value.isascii() and value.isdigit()):
        raise CfgError(f"cfg: key {key!r} needs a whole number of seconds, not {value!r}", key=key)
    seconds = int(value)
    if seconds > 10 * 365 * 86400:
        raise CfgError(f"cfg: key {key!r} is more than ten years", key=key)
    return seconds
