"""The inspector's result type and the context (keys) decoders may use.

The JSON shape of :meth:`Decoded.as_json` is a stable interface (docs/console.md):
``schema``, ``recognised``, ``format``, ``dialect``, ``summary``, ``input``,
``fields``, ``notes`` and, for challenges inspected on a server, ``server_would``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from license_server.core.model import LicenseChallenge

SCHEMA_VERSION = 1
NOT_RECOGNISED = "not a recognised DRM message"


@dataclass(frozen=True)
class Context:
    """Keys that let decoders look inside encrypted parts, all optional."""

    service_key_pem: bytes = field(default=b"", repr=False)  # Widevine privacy mode
    fairplay_certificate: bytes = b""
    fairplay_key_pem: bytes = field(default=b"", repr=False)
    token_jwks: dict[str, Any] | None = None
    token_verifier: Any = None  # a configured TokenVerifier (the server's); else one is built from token_jwks
    url_secret: bytes | None = field(default=None, repr=False)
    playready_server_key_pem: bytes = field(default=b"", repr=False)  # decrypts a challenge's EncryptedData
    playready_root_public_key: bytes = b""  # verifies BCert chains
    now: int | None = None

    @classmethod
    def from_keyring(cls, keyring: Any, *, url_secret: bytes | None = None, now: int | None = None) -> Context:
        import json

        jwks = None
        path = keyring.token_jwks_path
        if path.exists():
            jwks = json.loads(path.read_text(encoding="utf-8"))
        playready = getattr(keyring, "playready", None)
        return cls(playready_server_key_pem=playready.server_key_pem if playready else b"",
                   playready_root_public_key=playready.root_public_key if playready else b"",
                   service_key_pem=keyring.service_key_pem, fairplay_certificate=keyring.fairplay_certificate,
                   fairplay_key_pem=keyring.fairplay_key_pem, token_jwks=jwks, url_secret=url_secret, now=now)


@dataclass
class Decoded:
    """What a decoder found. ``challenge`` (not serialized) feeds the dry run."""

    format: str
    summary: str
    fields: dict[str, Any]
    dialect: str | None = None
    notes: list[str] = field(default_factory=list)
    challenge: LicenseChallenge | None = None
    extra: Any = None  # dialect-specific parse result the dry run may need

    def as_json(self, input_encoding: str) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION, "recognised": True, "format": self.format, "dialect": self.dialect,
            "summary": self.summary, "input": input_encoding, "fields": self.fields, "notes": list(self.notes),
        }


def unrecognised(input_encoding: str, reason: str | None = None) -> dict[str, Any]:
    """The answer for bytes no decoder accepts."""
    notes = [reason] if reason else []
    return {"schema": SCHEMA_VERSION, "recognised": False, "format": None, "dialect": None,
            "summary": NOT_RECOGNISED, "input": input_encoding, "fields": {}, "notes": notes}


class NotMine(Exception):
    """A decoder does not recognise the input (the next one is tried)."""


def hexs(data: bytes | None) -> str | None:
    return data.hex() if data is not None else None


def secret(data: bytes | None, what: str = "encrypted") -> str | None:
    """A secret-bearing value shown only as its size."""
    return None if data is None else f"<{what}, {len(data)} bytes, not shown>"
